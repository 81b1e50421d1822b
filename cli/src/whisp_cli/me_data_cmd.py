"""`whisp me usage|export|delete`: the caller's audio today against their daily quota, and
everything the services keep of theirs — exported whole (checked, `whisp_cli.me_export`)
or deleted for good after they type their user name."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated

import httpx
import typer
from pydantic import BaseModel

from whisp_cli.desk.rest import raise_for
from whisp_cli.me_common import UrlOpt, call, console, errors
from whisp_cli.me_export import export_to
from whisp_shared.user_data import AudioUsage, DataDeleted

# --------------------------------------------------------------------------- usage


def usage(url: UrlOpt = None) -> None:
    """Seconds of audio you sent today (UTC) on every path, against your daily quota."""

    def fetch(client: httpx.Client) -> AudioUsage:
        response = client.get("/api/me/usage")
        raise_for(response)
        return AudioUsage.model_validate_json(response.content)

    today = call(url, fetch)
    resets = f"resets {today.resets_at:%Y-%m-%d %H:%M} UTC"
    if today.quota_s is None:
        console.print(f"{today.used_s:g} s of audio today ({today.day}); no quota.", markup=False)
        return
    console.print(
        f"{today.used_s:g} s of {today.quota_s:g} s of audio today ({today.day}): "
        f"{today.remaining_s:g} s left; {resets}.",
        markup=False,
    )


# --------------------------------------------------------------------------- export


def export(
    output: Annotated[
        str | None,
        typer.Option(
            "-o",
            "--output",
            metavar="FILE",
            help="Where to write (default: whisptt-my-data-<date>.jsonl here; - for stdout).",
        ),
    ] = None,
    url: UrlOpt = None,
) -> None:
    """Everything of yours as JSON Lines: settings, every transcript (raw and final text,
    answers), agent sessions, notes and usage. Checks that the export arrived whole."""
    target = None if output == "-" else Path(output or f"whisptt-my-data-{date.today()}.jsonl")
    counts = call(url, lambda client: export_to(client, target, errors))
    where = "stdout" if target is None else str(target)
    (errors if target is None else console).print(f"Exported to {where}: {counts}", markup=False)


# --------------------------------------------------------------------------- delete


class _Who(BaseModel):
    """`GET /api/me`: only the name is needed, to confirm with."""

    class _User(BaseModel):
        id: str
        name: str

    user: _User


WHAT_GOES = (
    "This deletes everything of yours, for good: your audio, every transcript and agent "
    "answer, your settings, your agent sessions, notes and usage, and your rate-limit "
    "state. Your account ({name}) stays, and your token keeps working. `whisp me export` "
    "first keeps a copy."
)


def _confirmation(name: str, given: str | None) -> str:
    if given is not None:
        return given
    try:
        return str(
            typer.prompt(f"Type your user name ({name}) to delete", default="", show_default=False)
        )
    except typer.Abort:  # EOF on a closed stdin: no answer is a no
        return ""


def delete(
    confirm: Annotated[
        str | None,
        typer.Option("--confirm", metavar="NAME", help="Your user name, instead of typing it."),
    ] = None,
    url: UrlOpt = None,
) -> None:
    """Delete everything of yours (asks you to type your user name first)."""

    def who(client: httpx.Client) -> str:
        response = client.get("/api/me")
        raise_for(response)
        return _Who.model_validate_json(response.content).user.name

    name = call(url, who)
    console.print(WHAT_GOES.format(name=name), markup=False, soft_wrap=True)
    typed = _confirmation(name, confirm).strip()
    if typed != name:
        errors.print(f"Nothing deleted: that is not your user name ({name}).", markup=False)
        raise typer.Exit(2)

    def forget(client: httpx.Client) -> DataDeleted:
        response = client.delete("/api/me/data", params={"confirm": name})
        raise_for(response)
        return DataDeleted.model_validate_json(response.content)

    gone = call(url, forget)
    console.print(
        f"Deleted: {gone}.",
        markup=False,
        soft_wrap=True,
    )


def register(app: typer.Typer) -> None:
    app.command("usage")(usage)
    app.command("export")(export)
    app.command("delete")(delete)
