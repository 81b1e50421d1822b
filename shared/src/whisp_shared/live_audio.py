"""A live recording's audio on Redis: one short-lived stream per recording.

The audio service appends the user's audio as it arrives (16 kHz mono PCM16, one entry per
chunk) and, at release, one end entry: `commit` with the stored file's URI, or `cancel`.
A transcription worker follows the stream from its start; a peer that reclaims the
recording after a crash reads it again from the start, so nothing is lost. The stream is
capped (a recording's maximum length) and expires (`LIVE_AUDIO_TTL_S`) once done.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

LIVE_SAMPLE_RATE: Final = 16_000
"""Whatever the client sends (24 kHz for OpenAI's Realtime API) is stored at this rate."""
LIVE_AUDIO_TTL_S: Final = 3_600
"""A live recording's stream outlives its end by this long (a reclaiming peer's margin)."""
PCM_FIELD: Final = b"pcm"
END_FIELD: Final = b"end"
URI_FIELD: Final = b"audio_uri"
DURATION_FIELD: Final = b"duration_s"

EndKind = Literal["commit", "cancel"]


def live_audio_stream(recording_id: str) -> str:
    return f"whisp:audio:{recording_id}"


def pcm16_to_float(pcm: bytes) -> npt.NDArray[np.float32]:
    """Little-endian PCM16 → float32 in [-1, 1] (an odd trailing byte is dropped)."""
    usable = len(pcm) - len(pcm) % 2
    return np.frombuffer(pcm[:usable], dtype="<i2").astype(np.float32) / 32768.0


def chunk_fields(pcm16: bytes) -> dict[bytes, bytes]:
    return {PCM_FIELD: pcm16}


def end_fields(kind: EndKind, audio_uri: str = "", duration_s: float = 0.0) -> dict[bytes, bytes]:
    return {
        END_FIELD: kind.encode(),
        URI_FIELD: audio_uri.encode(),
        DURATION_FIELD: f"{duration_s:.3f}".encode(),
    }


@dataclass(frozen=True)
class LiveEnd:
    kind: EndKind
    audio_uri: str
    duration_s: float


def read_entry(fields: dict[bytes, bytes]) -> npt.NDArray[np.float32] | LiveEnd:
    """An entry of a live audio stream: samples, or the recording's end."""
    if PCM_FIELD in fields:
        return pcm16_to_float(fields[PCM_FIELD])
    kind = fields.get(END_FIELD, b"").decode()
    if kind not in ("commit", "cancel"):
        raise ValueError(f"not a live audio entry: {sorted(fields)}")
    return LiveEnd(
        kind="commit" if kind == "commit" else "cancel",
        audio_uri=fields.get(URI_FIELD, b"").decode(),
        duration_s=float(fields.get(DURATION_FIELD, b"0") or 0),
    )
