"""`whisp me export`: the caller's data from `GET /api/me/export`, streamed line by line to
a file (or stdout) and checked on the way, so a cut-off download never passes for a whole
one.

The gateway ends every export with `{"type": "end", …counts}`; an export without it was
cut off (a dropped connection, a gateway restart). The file is written as `FILE.part` and
renamed only once the end line arrived and its counts match the lines seen, so an earlier
good export of the same name is never replaced by a broken one.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import TextIO

import httpx
from pydantic import ValidationError
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn

from whisp_cli.desk.gateway import GatewayError
from whisp_cli.desk.rest import raise_for
from whisp_shared.user_data import ExportFinished

COUNTED = {
    "transcript": "transcripts",
    "agent_session": "agent_sessions",
    "agent_note": "agent_notes",
    "agent_usage": "agent_usage",
}
"""Line type → the end line's count of it."""


class ExportCutOff(GatewayError):
    def __init__(self, why: str, saved: bool) -> None:
        fix = "the partial file was removed; run it again" if saved else "run it again"
        super().__init__(f"the export was cut off ({why}); {fix}")


def _copy(
    response: httpx.Response, sink: TextIO, progress: Progress, saved: bool
) -> ExportFinished:
    """Every line to `sink`, counted; the end line, checked against the counts."""
    task = progress.add_task("exporting…", total=None)
    seen: Counter[str] = Counter()
    last: dict[str, object] = {}
    try:
        for line in response.iter_lines():
            if not line:
                continue
            last = json.loads(line)
            seen[str(last.get("type"))] += 1
            sink.write(line + "\n")
            progress.update(task, description=f"exporting… {seen['transcript']} transcript(s)")
    except httpx.HTTPError as exc:
        raise ExportCutOff(f"{type(exc).__name__}: {exc}", saved) from exc
    except (ValueError, AttributeError) as exc:  # half a line, or not an object
        raise ExportCutOff(f"a line that is not JSON: {exc}", saved) from exc
    if last.get("type") != "end":
        raise ExportCutOff("no end line arrived", saved)
    try:
        end = ExportFinished.model_validate(last)
    except ValidationError as exc:
        raise ExportCutOff(f"an end line this CLI cannot read: {exc}", saved) from exc
    counts = end.model_dump()
    missing = [f"{kind}: {seen[kind]} of {counts[field]}" for kind, field in COUNTED.items()
               if seen[kind] != counts[field]]  # fmt: skip
    if missing:
        raise ExportCutOff("lines are missing, " + ", ".join(missing), saved)
    return end


def export_to(client: httpx.Client, target: Path | None, errors: Console) -> ExportFinished:
    """Stream the export to `target` (None: stdout), with a live count on `errors`."""
    with (
        client.stream("GET", "/api/me/export") as response,
        Progress(SpinnerColumn(), TextColumn("{task.description}"), console=errors,
                 transient=True) as progress,
    ):  # fmt: skip
        raise_for(response)  # before any file exists: a refused export leaves nothing behind
        if target is None:
            return _copy(response, sys.stdout, progress, saved=False)
        part = target.with_name(target.name + ".part")
        try:
            with part.open("w", encoding="utf-8") as sink:
                end = _copy(response, sink, progress, saved=True)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        part.replace(target)
        return end
