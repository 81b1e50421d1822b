"""What kind of audio a client sent, judged from its bytes — never from the file name or
the declared Content-Type, which browsers and scripts get wrong (or lie about) — and how
long its header says it is, read cheaply before anything is decoded.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass

import av


@dataclass(frozen=True)
class AudioKind:
    content_type: str
    extension: str
    label: str


WAV = AudioKind("audio/wav", "wav", "WAV (RIFF/WAVE)")
FLAC = AudioKind("audio/flac", "flac", "FLAC")
MP3 = AudioKind("audio/mpeg", "mp3", "MP3")
OGG = AudioKind("audio/ogg", "ogg", "Ogg (Opus/Vorbis)")
WEBM = AudioKind("audio/webm", "webm", "WebM/Matroska")
MP4 = AudioKind("audio/mp4", "m4a", "MP4/M4A")
ACCEPTED: tuple[AudioKind, ...] = (WAV, FLAC, MP3, OGG, WEBM, MP4)

SNIFF_BYTES = 16
_UNKNOWN_WAV_SIZES = (0, 0xFFFFFFFF)  # what streaming writers put in when they cannot seek


def accepted_list() -> str:
    return ", ".join(f"{kind.label} ({kind.content_type})" for kind in ACCEPTED)


def _is_mpeg_frame(head: bytes) -> bool:
    """An MPEG-1/2/2.5 audio frame header: 11 sync bits, a valid version and layer."""
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return False
    version = (head[1] >> 3) & 0b11
    layer = (head[1] >> 1) & 0b11
    bitrate = head[2] >> 4
    rate = (head[2] >> 2) & 0b11
    return version != 0b01 and layer != 0 and bitrate != 0b1111 and rate != 0b11


def sniff(head: bytes) -> AudioKind | None:  # noqa: PLR0911 - one return per format
    """The container named by the file's magic bytes, or None for anything else."""
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return WAV
    if head[:4] == b"fLaC":
        return FLAC
    if head[:3] == b"ID3" or _is_mpeg_frame(head):
        return MP3
    if head[:4] == b"OggS":
        return OGG
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return WEBM
    if head[4:8] == b"ftyp":
        return MP4
    return None


def declared_duration_s(data: bytes, kind: AudioKind) -> float | None:
    """The duration the file's header claims, without decoding; None if it claims none.

    A WAV's claim is read from its chunks directly (a streaming WAV's 0/0xFFFFFFFF size
    means "unknown", not "13 hours"). Other containers go through FFmpeg's probe, which
    reads headers (FLAC STREAMINFO, MP4 mvhd, WebM Duration) and estimates the rest.
    """
    if kind is WAV:
        return _wav_declared_s(data)
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if container.duration is None:
                return None
            return float(container.duration) / 1_000_000
    except (av.FFmpegError, ValueError, IndexError):
        return None  # decoding will say what is wrong


def _wav_declared_s(data: bytes) -> float | None:
    byte_rate: int | None = None
    offset = 12
    while offset + 8 <= len(data):
        chunk_id, size = data[offset : offset + 4], struct.unpack_from("<I", data, offset + 4)[0]
        body = offset + 8
        if chunk_id == b"fmt " and size >= 16 and body + 16 <= len(data):
            byte_rate = struct.unpack_from("<I", data, body + 8)[0]
        elif chunk_id == b"data":
            if byte_rate is None or byte_rate == 0 or size in _UNKNOWN_WAV_SIZES:
                return None
            return float(size) / byte_rate
        offset = body + size + (size & 1)
    return None
