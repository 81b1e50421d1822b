"""Live audio as the Realtime socket wants it: 16 kHz mono PCM16 (little-endian) in ~100 ms
pieces, made from the blocks a source delivers (any rate, any channel count).

The resampler is FFmpeg's (PyAV), the same one the recorder uses when a press ends, kept
open across blocks so its filter state carries over and the joins are seamless; it runs on
the streaming thread, never on the audio thread.
"""

from __future__ import annotations

import av
import numpy as np
import numpy.typing as npt

from whisp_recorder.convert import to_mono
from whisp_shared.audio import TARGET_RATE

CHUNK_S = 0.1
BYTES_PER_SAMPLE = 2


def pcm16(samples: npt.NDArray[np.float32]) -> bytes:
    """Mono float samples in [-1, 1] as PCM16 little-endian (clipped to full scale)."""
    return np.round(np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


class PcmChunker:
    """Blocks in (`feed`), whole chunks out; `flush` hands back the rest at the end."""

    def __init__(self, source_rate: int, chunk_s: float = CHUNK_S) -> None:
        self.source_rate = source_rate
        self.chunk_bytes = round(TARGET_RATE * chunk_s) * BYTES_PER_SAMPLE
        self._pending = bytearray()
        self._pts = 0
        self._resampler = (
            None
            if source_rate == TARGET_RATE
            else av.AudioResampler(format="flt", layout="mono", rate=TARGET_RATE)
        )
        self.samples_out = 0
        """16 kHz samples produced so far (chunks handed out and pending)."""

    def feed(self, block: npt.NDArray[np.float32]) -> list[bytes]:
        """One source block (frames, channels) or (frames,); the chunks it completed."""
        mono = to_mono([block])
        if mono.size:
            self._add(self._resample(mono))
        return self._take(whole_only=True)

    def flush(self) -> list[bytes]:
        """The end of the press: what the resampler still holds, and the last short chunk."""
        if self._resampler is not None:
            self._add(self._drain(self._resampler.resample(None)))
        return self._take(whole_only=False)

    def _resample(self, mono: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        if self._resampler is None:
            return mono
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(mono, dtype=np.float32).reshape(1, -1),
            format="flt",
            layout="mono",
        )
        frame.sample_rate = self.source_rate
        frame.pts = self._pts
        self._pts += mono.size
        return self._drain(self._resampler.resample(frame))

    @staticmethod
    def _drain(frames: list[av.AudioFrame]) -> npt.NDArray[np.float32]:
        if not frames:
            return np.zeros(0, dtype=np.float32)
        parts = [f.to_ndarray().reshape(-1).astype(np.float32, copy=False) for f in frames]
        return np.concatenate(parts)

    def _add(self, samples: npt.NDArray[np.float32]) -> None:
        if samples.size:
            self._pending += pcm16(samples)
            self.samples_out += samples.size

    def _take(self, *, whole_only: bool) -> list[bytes]:
        size = self.chunk_bytes
        chunks = [bytes(self._pending[i : i + size]) for i in range(0, len(self._pending), size)]
        keep = whole_only and chunks and len(chunks[-1]) < size
        rest = chunks.pop() if keep else b""
        self._pending = bytearray(rest)
        return [c for c in chunks if c]
