"""Transcript exports, produced line by line so a long history streams instead of loading.

SRT and VTT lay each recording's segments on one continuous timeline (recordings in
the order they were made), so a whole history plays back as a single subtitle file.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Callable
from typing import Literal

from whisp_shared.views import Transcript

Format = Literal["jsonl", "csv", "txt", "srt", "vtt"]

MEDIA_TYPES: dict[str, str] = {
    "jsonl": "application/x-ndjson",
    "csv": "text/csv; charset=utf-8",
    "txt": "text/plain; charset=utf-8",
    "srt": "application/x-subrip; charset=utf-8",
    "vtt": "text/vtt; charset=utf-8",
}
CSV_FIELDS = [
    "recording_id",
    "created_at",
    "status",
    "language",
    "duration_s",
    "agent_id",
    "text",
    "answer",
    "raw_text",
]


def timestamp(seconds: float, sep: str) -> str:
    ms = round(seconds * 1000)
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def cues(items: list[Transcript]) -> list[tuple[float, float, str]]:
    """(start, end, text) on one timeline: each recording starts where the last ended."""
    out: list[tuple[float, float, str]] = []
    offset = 0.0
    for item in items:
        segments = item.segments or []
        if not segments and item.text:
            out.append((offset, offset + (item.duration_s or 1.0), item.text))
        out.extend((offset + s.start, offset + s.end, s.text) for s in segments)
        offset += item.duration_s or (segments[-1].end if segments else 0.0)
    return out


def subtitles(cue_list: list[tuple[float, float, str]], fmt: Literal["srt", "vtt"]) -> str:
    sep = "," if fmt == "srt" else "."
    blocks = [] if fmt == "srt" else ["WEBVTT\n"]
    for n, (start, end, text) in enumerate(cue_list, 1):
        head = f"{n}\n" if fmt == "srt" else ""
        blocks.append(f"{head}{timestamp(start, sep)} --> {timestamp(end, sep)}\n{text}\n")
    return "\n".join(blocks)


def _csv_line(values: list[object]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerow(values)
    return buffer.getvalue()


def _answer(item: Transcript) -> str:
    return "\n".join(a.output for a in item.answers if a.status == "done")


LINE_WRITERS: dict[str, Callable[[Transcript], str]] = {
    "jsonl": lambda t: t.model_dump_json() + "\n",
    "csv": lambda t: _csv_line(
        [
            t.recording_id,
            t.created_at.isoformat(),
            t.status,
            t.language or "",
            t.duration_s or "",
            t.agent_id or "",
            t.text,
            _answer(t),
            t.raw_text or "",
        ]
    ),
    "txt": lambda t: (
        f"[{t.created_at:%Y-%m-%d %H:%M:%S}] {t.text}\n"
        + "".join(f"  -> {a.agent_id}: {a.output}\n" for a in t.answers if a.status == "done")
    ),
}


async def render(items: AsyncIterator[Transcript], fmt: Format) -> AsyncIterator[str]:
    """Stream an export; subtitle formats gather one user's cues (oldest first) first."""
    if fmt in ("srt", "vtt"):
        collected = [item async for item in items if item.status == "done"]
        yield subtitles(cues(list(reversed(collected))), fmt)
        return
    if fmt == "csv":
        yield _csv_line(list(CSV_FIELDS))
    write = LINE_WRITERS[fmt]
    async for item in items:
        yield write(item)
