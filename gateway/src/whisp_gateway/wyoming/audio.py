"""One utterance's audio, from whatever a Wyoming client sends to what the live path takes.

Clients send PCM at any rate, width and channel count (Home Assistant: 16 kHz, 16-bit,
mono; other satellites differ). The `wyoming` library's `AudioChunkConverter` makes it
16-kHz PCM16 (what the workers decode: the audio service has nothing left to resample),
keeping its resampler's state across chunks so the joins stay clean; stereo is averaged
to mono here. Home
Assistant's chunks are ~60 ms: they are gathered into ~100-ms pieces, so one satellite
costs the audio service ten appends a second, not sixteen. The limits count what the
client sent; past either one the rest is not taken and the transcript covers what came.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from wyoming.audio import AudioChunk, AudioChunkConverter

from whisp_gateway.realtime.protocol import ProtocolError
from whisp_shared.codes import ErrorCode
from whisp_shared.live_audio import LIVE_SAMPLE_RATE

RATE = LIVE_SAMPLE_RATE
"""What goes to the live path: one of the rates it takes (`realtime.protocol.PCM_RATES`)."""
PIECE_BYTES = RATE * 2 // 10
"""~100 ms of converted audio per append."""


class AudioFormat(BaseModel):
    """`rate`, `width`, `channels` of an `audio-start` or `audio-chunk`."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    rate: int = Field(ge=1_000, le=384_000)
    width: int = Field(ge=1, le=4)
    """Bytes per sample: 1 is unsigned 8-bit, 2-4 signed little-endian."""
    channels: int = Field(ge=1, le=2)
    """Mono or stereo (the converter mixes stereo down; more channels it cannot)."""

    @property
    def frame_bytes(self) -> int:
        return self.width * self.channels


class UtteranceAudio:
    """The audio of one `audio-start` … `audio-stop`: converted, counted, gathered."""

    def __init__(self, fmt: AudioFormat, max_s: float, max_bytes: int) -> None:
        self.format = fmt
        self.max_s = max_s
        self.max_bytes = max_bytes
        self.bytes_in = 0
        self.frames_in = 0
        self.full = False
        """A limit was reached: nothing more is taken."""
        # Channels are left alone: the library's stereo-to-mono sums the two (up to twice
        # as loud, clipping); `_mono` averages them.
        self._converter = AudioChunkConverter(rate=RATE, width=2)
        self._pending = bytearray()

    @property
    def seconds(self) -> float:
        return self.frames_in / self.format.rate

    def add(self, fmt: AudioFormat, payload: bytes) -> bytes:
        """Take one chunk; the converted audio that is ready to send (often b"")."""
        if fmt != self.format:
            raise ProtocolError(
                ErrorCode.FORMAT_CHANGE_MID_ITEM,
                f"this chunk is {fmt.rate} Hz/{fmt.width} B/{fmt.channels} ch but audio-start "
                "said otherwise: send audio-stop, then a new audio-start",
            )
        if len(payload) % fmt.frame_bytes:
            raise ProtocolError(
                ErrorCode.INVALID_AUDIO,
                f"a chunk must hold whole frames of {fmt.frame_bytes} bytes; "
                f"this one has {len(payload)}",
            )
        if self.full:
            return b""
        room = self._room(fmt)
        if len(payload) // fmt.frame_bytes >= room:
            self.full = True
            payload = payload[: room * fmt.frame_bytes]
        self.bytes_in += len(payload)
        self.frames_in += len(payload) // fmt.frame_bytes
        if payload:
            chunk = AudioChunk(fmt.rate, fmt.width, fmt.channels, payload)
            self._pending += _mono(self._converter.convert(chunk).audio, fmt.channels)
        if len(self._pending) < PIECE_BYTES and not self.full:
            return b""
        return self.rest()

    def rest(self) -> bytes:
        """Everything converted and not sent yet (at `audio-stop`, or a limit)."""
        piece, self._pending = bytes(self._pending), bytearray()
        return piece

    def _room(self, fmt: AudioFormat) -> int:
        """Frames that still fit both limits."""
        by_time = int(self.max_s * fmt.rate) - self.frames_in
        by_size = (self.max_bytes - self.bytes_in) // fmt.frame_bytes
        return max(0, min(by_time, by_size))


def _mono(pcm16: bytes, channels: int) -> bytes:
    if channels == 1:
        return pcm16
    frames = np.frombuffer(pcm16, "<i2").reshape(-1, channels).astype(np.int32)
    return bytes(frames.mean(axis=1).astype("<i2").tobytes())
