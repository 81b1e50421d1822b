"""A file played as if it were a microphone: for tests, demos and replaying a clip.

The file is decoded once (PyAV, through whisp_shared.audio) to mono at `sample_rate`
and then delivered in small blocks from a thread of its own, paced to real time like a
device, or as fast as the consumer takes them.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from whisp_recorder.source import ErrorCallback, FrameCallback, SourceError
from whisp_shared.audio import TARGET_RATE, decode_audio
from whisp_shared.errors import PermanentError


class FileReplaySource:
    """Replays `source` (a path or the file's bytes) from its start on every `open`.

    `after_end="stop"` delivers nothing once the file is played (the recorder keeps
    waiting for stop, as with a muted microphone); `"silence"` keeps delivering zeros in
    real time, like a quiet room.
    """

    def __init__(
        self,
        source: Path | bytes,
        *,
        realtime: bool = True,
        block_s: float = 0.02,
        sample_rate: int = TARGET_RATE,
        after_end: Literal["stop", "silence"] = "stop",
    ) -> None:
        self._source = source
        self.realtime = realtime
        self._rate = sample_rate
        self._block = max(1, round(block_s * sample_rate))
        self.after_end = after_end
        self._samples: npt.NDArray[np.float32] | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.played = threading.Event()
        """Set once every sample of the file has been delivered."""

    @property
    def sample_rate(self) -> int:
        return self._rate

    @property
    def channels(self) -> int:
        return 1

    @property
    def is_open(self) -> bool:
        return self._thread is not None

    @property
    def duration_s(self) -> float:
        return len(self._load()) / self._rate

    def _load(self) -> npt.NDArray[np.float32]:
        if self._samples is None:
            try:
                self._samples = decode_audio(self._source, sample_rate=self._rate)
            except PermanentError as exc:
                raise SourceError(f"cannot replay the file: {exc.message}") from exc
        return self._samples

    def open(self, on_frames: FrameCallback, on_error: ErrorCallback | None = None) -> None:
        if self._thread is not None:
            raise SourceError("the source is already open")
        samples = self._load()
        self._stop.clear()
        self.played.clear()
        self._thread = threading.Thread(
            target=self._play, args=(samples, on_frames, on_error), name="file-replay", daemon=True
        )
        self._thread.start()

    def _play(
        self,
        samples: npt.NDArray[np.float32],
        on_frames: FrameCallback,
        on_error: ErrorCallback | None,
    ) -> None:
        started = time.monotonic()
        position = delivered = 0
        silence = np.zeros((self._block, 1), dtype=np.float32)
        while not self._stop.is_set():
            if position < len(samples):
                block = samples[position : position + self._block].reshape(-1, 1)
                position += len(block)
            elif self.after_end == "silence" and self.realtime:
                self.played.set()
                block = silence
            else:
                self.played.set()
                return
            try:
                on_frames(block)
            except Exception as exc:
                if on_error is not None:
                    on_error(exc)
                return
            delivered += len(block)
            if self.realtime:
                delay = started + delivered / self._rate - time.monotonic()
                if delay > 0:
                    self._stop.wait(delay)
                elif delay < -2 * self._block / self._rate:
                    # Fell behind (a slow consumer): a microphone would not deliver the
                    # missed time later in a burst, so forget the debt.
                    started -= delay

    def close(self) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        if thread is not threading.current_thread():
            thread.join()
