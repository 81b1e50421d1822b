"""Decide whether uploaded bytes are audio we take, cheapest checks first.

1. size (the route's body limit already stopped reading past the limit);
2. emptiness; 3. the container from its magic bytes (415 otherwise);
4. the duration its header *claims* (a 10-hour WAV header is refused before a single
   sample is decoded); 5. a full decode with PyAV, capped at `max_duration_s`, so even a
   file that lies about its length never makes us hold more than the limit in memory.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from whisp_audio.errors import AudioTooLong, FileTooLarge, UndecodableAudio, UnsupportedMediaType
from whisp_audio.formats import SNIFF_BYTES, AudioKind, accepted_list, declared_duration_s, sniff
from whisp_shared.audio import TARGET_RATE, decode_audio
from whisp_shared.codes import ErrorCode
from whisp_shared.errors import PermanentError

HEADER_SLACK_S = 1.0
"""Container durations are estimates (Ogg, MP3 without a Xing header): allow a little."""


@dataclass(frozen=True)
class CheckedUpload:
    kind: AudioKind
    samples: npt.NDArray[np.float32]

    @property
    def duration_s(self) -> float:
        return len(self.samples) / TARGET_RATE


def describe_seconds(seconds: float) -> str:
    if seconds >= 3600:
        return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"
    if seconds >= 60:
        return f"{int(seconds // 60)} min {int(seconds % 60)} s"
    return f"{seconds:.1f} s"


def too_long(seconds: float | None, limit_s: float) -> AudioTooLong:
    what = f"is {describe_seconds(seconds)} long" if seconds else "is too long"
    return AudioTooLong(f"the recording {what}; the limit is {describe_seconds(limit_s)}")


def check_upload(data: bytes, max_bytes: int, max_duration_s: float) -> CheckedUpload:
    if len(data) > max_bytes:
        raise FileTooLarge(
            f"the file is {len(data)} bytes; the limit is {max_bytes} bytes "
            f"({max_bytes / 1024**2:.0f} MiB)",
        )
    if not data:
        raise UndecodableAudio("the file is empty")
    kind = sniff(data[:SNIFF_BYTES])
    if kind is None:
        raise UnsupportedMediaType(
            "the file is not audio in a format we take (judged from its content, not its "
            f"name or declared type); accepted: {accepted_list()}",
        )
    declared = declared_duration_s(data, kind)
    if declared is not None and declared > max_duration_s + HEADER_SLACK_S:
        raise too_long(declared, max_duration_s)
    try:
        samples = decode_audio(data, max_seconds=max_duration_s)
    except PermanentError as exc:
        if exc.code == ErrorCode.AUDIO_TOO_LONG:
            raise too_long(None, max_duration_s) from exc
        raise UndecodableAudio(f"the {kind.label} file cannot be decoded: {exc.message}") from exc
    return CheckedUpload(kind, samples)
