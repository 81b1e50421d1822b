"""What the recorder needs from anything that produces sound: open with a callback, close.

A source calls back with float32 blocks shaped (frames, channels) at its own
`sample_rate`, usually on a thread of its own (PortAudio's, or a replay thread); the
recorder converts to 16 kHz mono afterwards, so a source never has to resample.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

Frames = npt.NDArray[np.float32]
"""A block of samples shaped (frames, channels), values in [-1, 1]."""
FrameCallback = Callable[[Frames], None]
ErrorCallback = Callable[[Exception], None]


class SourceError(RuntimeError):
    """The source could not open, or failed while open (device gone, server died)."""


class DeviceNotFound(SourceError):
    """No input device by that name or index."""


@runtime_checkable
class AudioSource(Protocol):
    """Something that streams audio blocks to a callback between `open` and `close`."""

    @property
    def sample_rate(self) -> int:
        """Rate of the blocks passed to the callback (known once open)."""
        ...

    @property
    def channels(self) -> int:
        """Columns of each block (known once open)."""
        ...

    @property
    def is_open(self) -> bool: ...

    def open(self, on_frames: FrameCallback, on_error: ErrorCallback | None = None) -> None:
        """Start delivering blocks; raise SourceError if the source cannot start.

        `on_error` is called (on any thread) if the source fails after opening; the
        source is then no longer delivering, but `close()` must still be called.
        """
        ...

    def close(self) -> None:
        """Stop delivering and release the device; idempotent, never raises."""
        ...
