"""A microphone through PortAudio (sounddevice): one InputStream per `open`.

PortAudio calls back on its own thread; this class only copies the block and hands it
on. The stream is released (aborted and closed) by `close()`, which the recorder calls
on stop, cancel, error and shutdown alike, so a device is never left held.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import sounddevice as sd  # type: ignore[import-untyped]

from whisp_recorder.source import (
    DeviceNotFound,
    ErrorCallback,
    FrameCallback,
    SourceError,
)
from whisp_shared.logs import get_logger

log = get_logger(__name__)

_open_lock = threading.Lock()
_open_streams = 0
portaudio_lock = threading.RLock()
"""Held while opening or closing a stream and while PortAudio re-initialises, so a
device-list refresh can never pull PortAudio out from under a stream being opened."""


def open_stream_count() -> int:
    """PortAudio input streams this process holds open right now (for leak checks)."""
    with _open_lock:
        return _open_streams


def _count(delta: int) -> None:
    global _open_streams  # noqa: PLW0603 - one process-wide tally, guarded by its lock
    with _open_lock:
        _open_streams += delta


class SoundDeviceSource:
    """Records from `device` (a name such as "pulse", an index, or None for the default).

    It asks PortAudio for `sample_rate` mono first (with ALSA's plug/pulse layers the
    resampling then happens there); a device that refuses is opened at its own default
    rate and channel count instead, and the recorder converts afterwards.
    """

    def __init__(
        self,
        device: str | int | None = None,
        sample_rate: int = 16_000,
        channels: int = 1,
        blocksize: int = 0,
    ) -> None:
        self.device = device
        self._wanted_rate = sample_rate
        self._wanted_channels = channels
        self._blocksize = blocksize
        self._stream: sd.InputStream | None = None
        self._rate = sample_rate
        self._channels = channels
        self._lock = threading.Lock()
        self._closing = False
        self._failure: Exception | None = None
        self.overflows = 0
        """Blocks PortAudio reported as overflowed (the callback fell behind)."""

    @property
    def sample_rate(self) -> int:
        return self._rate

    @property
    def channels(self) -> int:
        return self._channels

    @property
    def is_open(self) -> bool:
        return self._stream is not None

    def _candidates(self) -> list[tuple[int, int]]:
        """(rate, channels) to try, best first."""
        wanted = (self._wanted_rate, self._wanted_channels)
        try:
            info: Any = sd.query_devices(self.device, kind="input")
        except (ValueError, sd.PortAudioError) as exc:
            raise DeviceNotFound(f"no input device {self.device!r}: {exc}") from exc
        native_rate = int(info["default_samplerate"])
        native_channels = max(1, min(2, int(info["max_input_channels"])))
        out = [wanted, (native_rate, self._wanted_channels), (native_rate, native_channels)]
        return list(dict.fromkeys(out))

    def open(self, on_frames: FrameCallback, on_error: ErrorCallback | None = None) -> None:
        with portaudio_lock, self._lock:
            if self._stream is not None:
                raise SourceError("the source is already open")
            self._closing = False
            self._failure = None
            self.overflows = 0
            last: Exception | None = None
            for rate, channels in self._candidates():
                try:
                    stream = self._make_stream(rate, channels, on_frames, on_error)
                except sd.PortAudioError as exc:
                    last = exc
                    continue
                try:
                    stream.start()
                except sd.PortAudioError as exc:
                    stream.close(ignore_errors=True)
                    _count(-1)
                    last = exc
                    continue
                self._stream, self._rate, self._channels = stream, rate, channels
                log.debug("input stream open", device=self.device, rate=rate, channels=channels)
                return
            raise SourceError(f"cannot open input device {self.device!r}: {last}")

    def _make_stream(
        self,
        rate: int,
        channels: int,
        on_frames: FrameCallback,
        on_error: ErrorCallback | None,
    ) -> sd.InputStream:
        def callback(indata: Any, _frames: int, _time: Any, status: sd.CallbackFlags) -> None:
            if status.input_overflow:
                self.overflows += 1
            try:
                on_frames(np.array(indata, dtype=np.float32, copy=True))
            except Exception as exc:
                self._failure = exc
                raise sd.CallbackAbort from exc

        def finished() -> None:
            # PortAudio calls this when the stream ends for any reason; only an end we did
            # not ask for is an error.
            if not self._closing and on_error is not None:
                on_error(self._failure or SourceError("the input stream stopped by itself"))

        stream = sd.InputStream(
            device=self.device,
            samplerate=rate,
            channels=channels,
            dtype="float32",
            blocksize=self._blocksize,
            callback=callback,
            finished_callback=finished,
        )
        _count(1)
        return stream

    def close(self) -> None:
        """Abort and close the stream. Never call it from the audio callback itself."""
        with portaudio_lock, self._lock:
            stream, self._stream = self._stream, None
            if stream is None:
                return
            self._closing = True
            try:
                stream.abort(ignore_errors=True)
                stream.close(ignore_errors=True)
            except Exception as exc:  # a dying server must not keep the device "held"
                log.warning("closing the input stream failed", error=str(exc))
            finally:
                _count(-1)
