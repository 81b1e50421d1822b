"""Decode any common audio container to 16 kHz mono float32 with PyAV (FFmpeg's libraries
inside the wheel; no ffmpeg binary needed).

Shared by the audio service (normalising uploads) and the transcription workers
(reading what they fetch), so both accept exactly the same formats.
"""

from __future__ import annotations

import io
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt

from whisp_shared.codes import ErrorCode
from whisp_shared.errors import PermanentError

TARGET_RATE = 16_000


class AudioDecodeError(PermanentError):
    code = ErrorCode.UNDECODABLE_AUDIO
    status = 422


def decode_audio(
    source: bytes | Path, sample_rate: int = TARGET_RATE, max_seconds: float | None = None
) -> npt.NDArray[np.float32]:
    """Samples of the first audio stream as mono float32 at `sample_rate`.

    Raises AudioDecodeError (stable code `undecodable_audio`) for anything that is not
    audio, and `PermanentError(code="audio_too_long")` past `max_seconds`.
    """
    data = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        with av.open(data, mode="r") as container:
            if not container.streams.audio:
                raise AudioDecodeError("the file has no audio stream")
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
            chunks: list[npt.NDArray[np.float32]] = []
            total = 0
            limit = None if max_seconds is None else int(max_seconds * sample_rate)
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunk = out.to_ndarray().reshape(-1).astype(np.float32, copy=False)
                    chunks.append(chunk)
                    total += len(chunk)
                if limit is not None and total > limit:
                    raise PermanentError(
                        f"the recording is longer than the {max_seconds:.0f} s limit",
                        code=ErrorCode.AUDIO_TOO_LONG,
                        status=413,
                    )
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1).astype(np.float32, copy=False))
    except PermanentError:
        raise
    except (av.FFmpegError, ValueError, IndexError) as exc:
        detail = getattr(exc, "strerror", None) or str(exc)
        raise AudioDecodeError(f"not a readable audio file: {detail}") from exc
    if not chunks:
        raise AudioDecodeError("the file holds no audio samples")
    return np.concatenate(chunks)


def rms_dbfs(samples: npt.NDArray[np.float32]) -> float:
    """Loudness of a clip; digital silence is -inf."""
    if samples.size == 0:
        return float("-inf")
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    return float("-inf") if rms == 0 else 20 * float(np.log10(rms))
