"""Recorders by (user, device): several people, or several devices, record at once.

The key includes the user, so one person's stop or cancel can never touch another's
recording, even on the same device name.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

from whisp_recorder.machine import ACTIVE_STATES, RecorderState
from whisp_recorder.recorder import Recorder

RecorderKey = tuple[str, str]
"""(user_id, device name as the caller spelled it)."""


class RecorderRegistry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._recorders: dict[RecorderKey, Recorder] = {}

    def get(self, key: RecorderKey) -> Recorder | None:
        with self._lock:
            return self._recorders.get(key)

    def get_or_create(self, key: RecorderKey, factory: Callable[[], Recorder]) -> Recorder:
        with self._lock:
            recorder = self._recorders.get(key)
            if recorder is None:
                recorder = self._recorders[key] = factory()
            return recorder

    def discard(self, key: RecorderKey) -> None:
        """Forget an idle recorder (its device is already released)."""
        with self._lock:
            recorder = self._recorders.get(key)
            if recorder is not None and recorder.state is RecorderState.IDLE:
                del self._recorders[key]

    def items(self) -> Iterator[tuple[RecorderKey, Recorder]]:
        with self._lock:
            return iter(list(self._recorders.items()))

    def active_count(self) -> int:
        """Recorders holding a device or a finished clip (ARMED, RECORDING, PROCESSING)."""
        with self._lock:
            return sum(r.state is not RecorderState.IDLE for r in self._recorders.values())

    def holding_device(self) -> int:
        with self._lock:
            return sum(r.state in ACTIVE_STATES for r in self._recorders.values())

    def close_all(self) -> None:
        """Shutdown: release every device; the registry is empty afterwards."""
        with self._lock:
            recorders, self._recorders = list(self._recorders.values()), {}
        for recorder in recorders:
            recorder.close()
