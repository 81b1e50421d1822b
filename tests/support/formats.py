"""Re-encode a test WAV into the containers browsers and phones actually send, with PyAV.

PyAV's wheel carries its own FFmpeg libraries, so no ffmpeg binary is needed (nor used).
Each format is a real muxed file (headers, packet timing, Opus pre-skip, the LAME/Xing
header with the MP3 encoder delay) that FFmpeg and browsers accept, not raw codec frames.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
from av.audio.frame import AudioFrame
from av.audio.stream import AudioStream


@dataclass(frozen=True)
class FormatSpec:
    container: str  # FFmpeg muxer name for av.open(..., "w", format=...)
    codec: str  # FFmpeg encoder name
    rate: int  # sample rate the encoder is fed
    layout: str  # "mono" or "stereo"
    sample_format: str  # a sample format the encoder accepts
    suffix: str
    content_type: str


FORMATS: dict[str, FormatSpec] = {
    # What a desktop recorder or a "Save as WAV" produces: CD rate, stereo, 16-bit PCM.
    "wav44k_stereo": FormatSpec("wav", "pcm_s16le", 44_100, "stereo", "s16", ".wav", "audio/wav"),
    # FLAC keeps the source rate (16 kHz mono); lossless, so it round-trips exactly.
    "flac": FormatSpec("flac", "flac", 16_000, "mono", "s16", ".flac", "audio/flac"),
    # LAME at 44.1 kHz from planar float (its native input), FFmpeg's default settings.
    "mp3": FormatSpec("mp3", "libmp3lame", 44_100, "mono", "fltp", ".mp3", "audio/mpeg"),
    # Opus always runs at 48 kHz internally; Firefox's MediaRecorder gives ogg/opus...
    "ogg_opus": FormatSpec("ogg", "libopus", 48_000, "mono", "flt", ".ogg", "audio/ogg"),
    # ...and Chrome's MediaRecorder gives webm/opus.
    "webm_opus": FormatSpec("webm", "libopus", 48_000, "mono", "flt", ".webm", "audio/webm"),
}

CONTENT_TYPES: dict[str, str] = {name: spec.content_type for name, spec in FORMATS.items()}


def encode(src_wav: Path, fmt: str, out_dir: Path) -> Path:
    """Encode `src_wav` as `fmt` into `out_dir`; returns the new file (reused if present).

    The output is written under a temporary name and renamed, so a half-written file
    is never mistaken for a cached one.
    """
    spec = FORMATS[fmt]
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{src_wav.stem}.{fmt}{spec.suffix}"
    if target.exists() and target.stat().st_mtime >= src_wav.stat().st_mtime:
        return target
    fd, tmp_name = tempfile.mkstemp(dir=out_dir, prefix=f".{target.name}.", suffix=spec.suffix)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        _encode_into(src_wav, spec, tmp)
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _encode_into(src: Path, spec: FormatSpec, dst: Path) -> None:
    with av.open(str(src), "r") as inp, av.open(str(dst), "w", format=spec.container) as out:
        stream = out.add_stream(spec.codec, rate=spec.rate)
        assert isinstance(stream, AudioStream)
        stream.layout = spec.layout
        stream.format = spec.sample_format
        # Opus and MP3 take fixed-size frames (960 / 1152 samples): open the encoder to
        # learn its size and let the resampler cut frames to it. PCM and FLAC take any.
        stream.codec_context.open()
        frame_size = stream.codec_context.frame_size or None
        resampler = av.AudioResampler(
            format=spec.sample_format, layout=spec.layout, rate=spec.rate, frame_size=frame_size
        )
        for frame in inp.decode(inp.streams.audio[0]):
            frame.pts = None  # let the resampler/encoder count samples from zero
            for resampled in resampler.resample(frame):
                out.mux(stream.encode(resampled))
        for resampled in resampler.resample(None):
            out.mux(stream.encode(resampled))
        out.mux(stream.encode(None))


def _decode_with(path: Path, resampler: av.AudioResampler) -> list[npt.NDArray[np.float32]]:
    """Every frame of the first audio stream through `resampler`, as (channels, n) arrays."""
    chunks: list[npt.NDArray[np.float32]] = []
    with av.open(str(path), "r") as inp:
        for frame in inp.decode(inp.streams.audio[0]):
            chunks.extend(_planar(f) for f in resampler.resample(frame))
        chunks.extend(_planar(f) for f in resampler.resample(None))
    return chunks


def _planar(frame: AudioFrame) -> npt.NDArray[np.float32]:
    array: npt.NDArray[np.float32] = frame.to_ndarray().astype(np.float32, copy=False)
    return array.reshape(len(frame.layout.channels), -1)


def decode(path: Path) -> tuple[npt.NDArray[np.float32], int, int]:
    """All samples of the first audio stream as float32 (channels, samples), rate, channels.

    Decoded in the file's own rate and layout, so a test can check what was really stored.
    """
    with av.open(str(path), "r") as inp:
        context = inp.streams.audio[0].codec_context
        rate, channels, layout = context.sample_rate, context.channels, context.layout
    chunks = _decode_with(path, av.AudioResampler(format="fltp", layout=layout, rate=rate))
    samples = np.concatenate(chunks, axis=1) if chunks else np.zeros((channels, 0), np.float32)
    return samples, rate, channels


def decoded_duration_s(path: Path) -> float:
    """Duration of what a decoder really yields (not the container's header claim)."""
    samples, rate, _ = decode(path)
    return float(samples.shape[1]) / rate


def decode_mono(path: Path, rate: int = 16_000) -> npt.NDArray[np.float32]:
    """The first audio stream mixed down to mono float32 at `rate` (as the services read it)."""
    chunks = _decode_with(path, av.AudioResampler(format="flt", layout="mono", rate=rate))
    return np.concatenate(chunks, axis=1)[0] if chunks else np.zeros(0, np.float32)
