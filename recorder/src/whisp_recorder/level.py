"""A level meter: RMS loudness of the most recent audio, for a UI's VU bar and for
noticing a dead microphone (a level stuck at the floor)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from whisp_shared.audio import rms_dbfs

FLOOR_DBFS = -100.0
"""Reported for digital silence (JSON has no -inf)."""


class LevelMeter:
    """RMS dBFS over the last `window_s`; `update` runs on the audio thread, `dbfs`
    anywhere (the window is swapped in one assignment, so readers never see it torn)."""

    def __init__(self, sample_rate: int, window_s: float = 0.1) -> None:
        self._size = max(1, round(sample_rate * window_s))
        self._recent: npt.NDArray[np.float32] = np.zeros(0, dtype=np.float32)

    def reset(self) -> None:
        self._recent = np.zeros(0, dtype=np.float32)

    def update(self, frames: npt.NDArray[np.float32]) -> None:
        mono = frames.mean(axis=1, dtype=np.float32) if frames.ndim == 2 else frames
        self._recent = np.concatenate((self._recent, mono))[-self._size :]

    @property
    def dbfs(self) -> float:
        level = rms_dbfs(self._recent)
        return FLOOR_DBFS if level < FLOOR_DBFS else round(level, 1)
