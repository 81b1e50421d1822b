"""The recorder core as the desk tools use it: begin on press, end on release.

It adds what both adapters need around `Recorder`: keeping the microphone open between
recordings (optional), noticing a recording the core stopped by itself (max duration),
the press -> first captured frame latency, and a tap that sees the press's audio as it
comes (the live stream), while the recorder still keeps all of it for an upload.
"""

from __future__ import annotations

import time
from typing import Protocol

from whisp_cli.desk.sources import TimedSource
from whisp_recorder import AudioSource, Frames, Recorder, RecorderState, Recording


class AudioTap(Protocol):
    """Sees a press's audio live: `begin` once the device's rate is known, then each block
    (on the audio thread: it must return at once)."""

    def begin(self, rate: int) -> None: ...

    def feed(self, block: Frames) -> None: ...


class Capture:
    def __init__(
        self, source: AudioSource, *, preopen: bool = False, max_duration_s: float = 300.0
    ) -> None:
        self.timed = TimedSource(source)
        self.recorder = Recorder(self.timed, max_duration_s=max_duration_s)
        self.preopen = preopen
        self.pressed_at: float | None = None

    @property
    def state(self) -> RecorderState:
        return self.recorder.state

    @property
    def recording(self) -> bool:
        return self.recorder.state is RecorderState.RECORDING

    @property
    def stopped_by_itself(self) -> bool:
        """The core hit its maximum duration: the caller should `end()` and send it."""
        return self.recorder.state is RecorderState.PROCESSING

    def ready(self) -> None:
        """Open the device ahead of the first press when `preopen` (raises SourceError)."""
        if self.preopen and self.recorder.state is RecorderState.IDLE:
            self.recorder.arm()

    def begin(self, pressed_at: float | None = None, tap: AudioTap | None = None) -> None:
        """Start keeping audio (opening the device first unless it is already open); `tap`
        gets every block from now until `end()` (a block or so more than the recorder keeps,
        never less)."""
        if self.recorder.state is RecorderState.IDLE:
            self.recorder.arm()
        if tap is not None:
            tap.begin(self.timed.sample_rate)
            self.timed.tap = tap.feed
        try:
            self.recorder.start()
        except BaseException:
            self.timed.tap = None
            raise
        self.timed.expect()
        self.pressed_at = time.monotonic() if pressed_at is None else pressed_at

    def end(self) -> Recording | None:
        """Stop and hand back the audio; the recorder is free for the next press at once."""
        state = self.recorder.state
        recording: Recording | None
        if state is RecorderState.RECORDING:
            recording = self.recorder.stop()
        elif state is RecorderState.PROCESSING:
            recording = self.recorder.result
        else:
            self.timed.tap = None
            return None
        self.timed.tap = None  # after the stop: the device is closed, no block is missed
        self.recorder.finish()
        return recording

    def first_frame_ms(self) -> float | None:
        """Milliseconds from the key press to the first block the recorder kept."""
        first, pressed = self.timed.first_frame_at, self.pressed_at
        if first is None or pressed is None:
            return None
        return round((first - pressed) * 1000, 1)

    def close(self) -> None:
        """Release the device whatever the state (drops an unfinished recording)."""
        self.timed.tap = None
        self.recorder.close()
