"""Which sound the desk tools record: a microphone (by index or name) or a file replayed
in real time as if it were one (for tests, demos and people without a microphone).

PortAudio is imported only when a microphone is asked for, so `--input FILE` works on a
machine without libportaudio, and a missing library becomes a sentence, not a traceback.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from whisp_recorder import AudioSource, FileReplaySource, SourceError
from whisp_recorder.source import ErrorCallback, FrameCallback, Frames
from whisp_shared.logs import get_logger

log = get_logger(__name__)

NO_AUDIO_HINT = (
    "no audio input: PortAudio sees no sound card or audio server. Start PulseAudio or "
    "PipeWire (or plug in a microphone), check `whisp devices`, or record a file with --input."
)


def parse_device(value: str | int | None) -> str | int | None:
    """`--device 3` means index 3; anything else is a device name such as `pulse`."""
    if value is None or isinstance(value, int):
        return value
    text = value.strip()
    if not text:
        return None
    return int(text) if text.isdigit() else text


def microphone(device: str | int | None) -> AudioSource:
    """A PortAudio input, checked now so a missing microphone is reported at start."""
    try:
        import sounddevice as sd  # type: ignore[import-untyped]  # noqa: PLC0415

        from whisp_recorder.sounddevice_source import SoundDeviceSource  # noqa: PLC0415
    except OSError as exc:  # libportaudio2 missing
        raise SourceError(f"PortAudio is not installed ({exc}); install libportaudio2") from exc
    try:
        sd.query_devices(device, kind="input")
    except (ValueError, sd.PortAudioError) as exc:
        which = "the default input" if device is None else f"input device {device!r}"
        raise SourceError(f"{which} is not available: {exc}. {NO_AUDIO_HINT}") from exc
    return SoundDeviceSource(device)


def file_source(path: Path) -> FileReplaySource:
    if not path.is_file():
        raise SourceError(f"no such file: {path}")
    source = FileReplaySource(path, realtime=True, after_end="silence")
    source.duration_s  # noqa: B018 - decode now: a bad file fails before the first press
    return source


class TimedSource:
    """An AudioSource wrapper that notes when the first block after `expect()` arrived,
    for the key press -> first captured frame figure, and hands every block to `tap` too
    while one is set (the live stream of a press)."""

    def __init__(self, inner: AudioSource) -> None:
        self.inner = inner
        self._lock = threading.Lock()
        self._waiting = False
        self.first_frame_at: float | None = None
        self.tap: FrameCallback | None = None

    @property
    def sample_rate(self) -> int:
        return self.inner.sample_rate

    @property
    def channels(self) -> int:
        return self.inner.channels

    @property
    def is_open(self) -> bool:
        return self.inner.is_open

    def expect(self) -> None:
        """The next block counts as the first captured one."""
        with self._lock:
            self._waiting, self.first_frame_at = True, None

    def open(self, on_frames: FrameCallback, on_error: ErrorCallback | None = None) -> None:
        def timed(frames: Frames) -> None:
            if self._waiting:
                with self._lock:
                    if self._waiting:
                        self._waiting, self.first_frame_at = False, time.monotonic()
            on_frames(frames)
            if (tap := self.tap) is not None:
                try:
                    tap(frames)
                except Exception as exc:  # the stream is a bonus: it never stops the recording
                    self.tap = None
                    log.warning("the live stream's tap failed", error=repr(exc))

        self.inner.open(timed, on_error)

    def close(self) -> None:
        self.inner.close()
