"""Format conversion to what the services work in: 16 kHz mono, float32 in memory and
16-bit PCM WAV on disk.

Resampling goes through PyAV's resampler (FFmpeg's swresample), the same code that
normalises uploads, so a device recording and an uploaded file are treated alike.
"""

from __future__ import annotations

import io
import wave
from collections.abc import Sequence

import av
import numpy as np
import numpy.typing as npt

from whisp_shared.audio import TARGET_RATE

_CHUNK = 1 << 16  # frames per resampler call: bounded memory for long clips


def to_mono(blocks: Sequence[npt.NDArray[np.float32]]) -> npt.NDArray[np.float32]:
    """Join (frames, channels) blocks into one mono signal (the mean of the channels)."""
    if not blocks:
        return np.zeros(0, dtype=np.float32)
    joined = np.concatenate(blocks, axis=0)
    mono: npt.NDArray[np.float32] = (
        joined.astype(np.float32, copy=False) if joined.ndim == 1 else joined.mean(axis=1)
    ).astype(np.float32, copy=False)
    return mono


def resample(
    samples: npt.NDArray[np.float32], rate: int, target: int = TARGET_RATE
) -> npt.NDArray[np.float32]:
    """Mono float32 at `rate` to `target` (a no-op when they match)."""
    if rate == target or samples.size == 0:
        return samples.astype(np.float32, copy=False)
    resampler = av.AudioResampler(format="flt", layout="mono", rate=target)
    out: list[npt.NDArray[np.float32]] = []
    pts = 0
    for start in range(0, len(samples), _CHUNK):
        chunk = np.ascontiguousarray(samples[start : start + _CHUNK], dtype=np.float32)
        frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="flt", layout="mono")
        frame.sample_rate = rate
        frame.pts = pts
        pts += len(chunk)
        out.extend(_samples(f) for f in resampler.resample(frame))
    out.extend(_samples(f) for f in resampler.resample(None))
    return np.concatenate(out).astype(np.float32, copy=False) if out else samples[:0]


def _samples(frame: av.AudioFrame) -> npt.NDArray[np.float32]:
    return frame.to_ndarray().reshape(-1).astype(np.float32, copy=False)


def wav_bytes(samples: npt.NDArray[np.float32], rate: int = TARGET_RATE) -> bytes:
    """Mono float samples as a 16-bit PCM WAV file (clipped to full scale)."""
    pcm = np.round(np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm.tobytes())
    return buffer.getvalue()
