"""An AudioSource that fails on cue — the one thing a real device cannot be made to do
on demand. It implements the recorder's own protocol (it is not a stand-in for
sounddevice or PyAV) and counts opens and closes so tests can see a device released."""

from __future__ import annotations

import threading

import numpy as np

from whisp_recorder import ErrorCallback, FrameCallback, SourceError


class FailingSource:
    """Delivers `blocks_before_failure` blocks of a quiet tone, then reports an error."""

    def __init__(self, blocks_before_failure: int = 5, sample_rate: int = 16_000) -> None:
        self.blocks_before_failure = blocks_before_failure
        self._rate = sample_rate
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.opens = 0
        self.closes = 0

    @property
    def sample_rate(self) -> int:
        return self._rate

    @property
    def channels(self) -> int:
        return 1

    @property
    def is_open(self) -> bool:
        return self._thread is not None

    def open(self, on_frames: FrameCallback, on_error: ErrorCallback | None = None) -> None:
        self.opens += 1
        self._stop.clear()

        def run() -> None:
            block = np.full((320, 1), 0.1, dtype=np.float32)
            for _ in range(self.blocks_before_failure):
                if self._stop.wait(0.02):
                    return
                on_frames(block)
            if on_error is not None:
                on_error(SourceError("the microphone was unplugged"))

        self._thread = threading.Thread(target=run, name="failing-source", daemon=True)
        self._thread.start()

    def close(self) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self.closes += 1
        self._stop.set()
        if thread is not threading.current_thread():
            thread.join()
