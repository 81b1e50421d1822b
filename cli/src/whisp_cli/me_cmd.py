"""`whisp me settings|preview`: the caller's own settings, through the gateway's
`/api/me/settings` routes with their API token (`WHISP_TOKEN`), as the web page's settings
panel does (their data: `whisp_cli.me_data_cmd`).

The gateway validates everything (the shapes are `whisp_shared.user_settings`); the CLI
only turns options into a PATCH and shows a refusal's message as the gateway wrote it
(exit code 2; 1 when the gateway is away or broke, see `whisp_cli.desk.rest`). Lists are
changed read-modify-write: GET, edit, PATCH of the whole list field.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

import httpx
import typer
from rich.table import Table
from rich.text import Text

from whisp_cli import me_data_cmd
from whisp_cli.desk.rest import raise_for, text_or_stdin
from whisp_cli.me_common import UrlOpt, call, console, errors
from whisp_shared.dictation import Replacement
from whisp_shared.user_settings import PreviewResult, UserSettings, phrase_key

T = TypeVar("T")

app = typer.Typer(
    help="Your own settings and data: show and change settings, try replacements, see "
    "today's audio against your quota, export everything of yours, delete everything of "
    "yours.",
    no_args_is_help=True,
)
KEEP = "keep"
AUTO = "auto"


def _get_settings(client: httpx.Client) -> UserSettings:
    response = client.get("/api/me/settings")
    raise_for(response)
    return UserSettings.model_validate_json(response.content)


# --------------------------------------------------------------------------- settings


def _days(value: str | None, option: str) -> tuple[bool, int | None]:
    """(given?, days or None for "keep"); the range is the gateway's to check."""
    if value is None:
        return False, None
    if value.strip().lower() == KEEP:
        return True, None
    try:
        return True, int(value)
    except ValueError as exc:
        raise typer.BadParameter(
            f"a number of days or {KEEP!r}, not {value!r}", param_hint=option
        ) from exc


def _rule(text: str) -> Replacement:
    """`spoken=written`; `\\n` in written is a line break (`"new paragraph=\\n\\n"`)."""
    spoken, sep, written = text.partition("=")
    if not sep or not spoken.strip():
        raise typer.BadParameter(f"SPOKEN=WRITTEN, not {text!r}", param_hint="--replace")
    return Replacement.model_construct(spoken=spoken.strip(), written=written.replace("\\n", "\n"))


def _edit_words(old: list[str], add: list[str], remove: list[str]) -> list[str]:
    gone = {word.strip().casefold() for word in remove}
    for word in remove:
        if word.strip().casefold() not in {w.casefold() for w in old}:
            errors.print(f"note: {word!r} is not in your vocabulary", markup=False)
    return [w for w in old if w.casefold() not in gone] + add


def _edit_rules(old: list[Replacement], add: list[Replacement], remove: list[str]) -> list[Any]:
    """A new rule for a phrase replaces the old one (one rule per phrase, as the gateway
    insists); removal matches the phrase as the gateway compares them."""
    removing = {phrase_key(Replacement.model_construct(spoken=s, written="")): s for s in remove}
    for key in removing.keys() - {phrase_key(rule) for rule in old}:
        errors.print(f"note: there is no replacement for {removing[key]!r}", markup=False)
    drop = removing.keys() | {phrase_key(rule) for rule in add}
    kept = [rule for rule in old if phrase_key(rule) not in drop]
    return [rule.model_dump() for rule in (*kept, *add)]


def _patch(
    current: UserSettings | None,
    *,
    add_word: list[str],
    remove_word: list[str],
    replace: list[str],
    unreplace: list[str],
    default_agent: str | None,
    no_default_agent: bool,
    language: str | None,
    keep_audio: bool | None,
    audio_days: str | None,
    transcript_days: str | None,
) -> dict[str, Any]:
    """The PATCH body the options ask for (empty: nothing to change)."""
    body: dict[str, Any] = {}
    if current is not None and (add_word or remove_word):
        body["vocabulary"] = _edit_words(current.vocabulary, add_word, remove_word)
    if current is not None and (replace or unreplace):
        rules = [_rule(text) for text in replace]
        body["replacements"] = _edit_rules(current.replacements, rules, unreplace)
    if default_agent is not None and no_default_agent:
        raise typer.BadParameter("--default-agent and --no-default-agent contradict each other")
    if default_agent is not None or no_default_agent:
        body["default_agent"] = default_agent
    if language is not None:
        body["language"] = None if language.strip().lower() == AUTO else language
    if keep_audio is not None:
        body["keep_audio"] = keep_audio
    for field, value, option in (
        ("audio_retention_days", audio_days, "--audio-retention-days"),
        ("transcript_retention_days", transcript_days, "--transcript-retention-days"),
    ):
        given, days = _days(value, option)
        if given:
            body[field] = days
    return body


def _written(text: str) -> Text:
    """What a rule writes, with line breaks visible (as `\\n`, the way --replace takes
    them) and nothing shown as such."""
    if not text:
        return Text("(nothing)", style="dim")
    out = Text()
    for n, part in enumerate(text.split("\n")):
        if n:
            out.append("\\n", style="bold magenta")
        out.append(part)
    return out


def _days_text(days: int | None) -> str:
    return KEEP if days is None else f"{days} day{'s' * (days != 1)}"


def show_settings(settings: UserSettings) -> None:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    words = ", ".join(settings.vocabulary)
    table.add_row("vocabulary", Text(words) if words else Text("none", style="dim"))
    rules = Text()
    for n, rule in enumerate(settings.replacements):
        if n:
            rules.append("\n")
        rules.append(rule.spoken)
        rules.append(" → ", style="dim")
        rules.append_text(_written(rule.written))
    table.add_row("replacements", rules if settings.replacements else Text("none", style="dim"))
    table.add_row("default agent", Text(settings.default_agent or "none"))
    table.add_row("language", Text(settings.language or AUTO))
    table.add_row("keep audio", "yes" if settings.keep_audio else "no (deleted once transcribed)")
    table.add_row("audio retention", _days_text(settings.audio_retention_days))
    table.add_row("transcript retention", _days_text(settings.transcript_retention_days))
    console.print(table)


@app.command("settings")
def settings_command(
    add_word: Annotated[
        list[str] | None,
        typer.Option("--add-word", metavar="WORD", help="Add to your vocabulary (repeatable)."),
    ] = None,
    remove_word: Annotated[
        list[str] | None,
        typer.Option("--remove-word", metavar="WORD", help="Remove a word (repeatable)."),
    ] = None,
    replace: Annotated[
        list[str] | None,
        typer.Option(
            "--replace",
            metavar="SPOKEN=WRITTEN",
            help="Write WRITTEN when you say SPOKEN (repeatable); \\n is a line break: "
            '--replace "new paragraph=\\n\\n".',
        ),
    ] = None,
    unreplace: Annotated[
        list[str] | None,
        typer.Option("--unreplace", metavar="SPOKEN", help="Drop the replacement for SPOKEN."),
    ] = None,
    default_agent: Annotated[
        str | None,
        typer.Option(
            metavar="ID", help="The agent `whisp record`/`hotkey` and the page use by default."
        ),
    ] = None,
    no_default_agent: Annotated[
        bool, typer.Option("--no-default-agent", help="No default agent.")
    ] = False,
    language: Annotated[
        str | None, typer.Option(metavar="xx|auto", help="Recognition language, or auto-detect.")
    ] = None,
    keep_audio: Annotated[
        bool | None,
        typer.Option("--keep-audio/--no-keep-audio", help="Keep the audio after transcribing."),
    ] = None,
    audio_retention_days: Annotated[
        str | None, typer.Option(metavar="N|keep", help="Delete audio older than N days.")
    ] = None,
    transcript_retention_days: Annotated[
        str | None, typer.Option(metavar="N|keep", help="Delete transcripts older than N days.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the settings as JSON.")] = False,
    url: UrlOpt = None,
) -> None:
    """Show your settings; with options, change them first (only what the options name)."""
    lists = bool(add_word or remove_word or replace or unreplace)

    def work(client: httpx.Client) -> UserSettings:
        current = _get_settings(client) if lists else None
        body = _patch(
            current,
            add_word=add_word or [],
            remove_word=remove_word or [],
            replace=replace or [],
            unreplace=unreplace or [],
            default_agent=default_agent,
            no_default_agent=no_default_agent,
            language=language,
            keep_audio=keep_audio,
            audio_days=audio_retention_days,
            transcript_days=transcript_retention_days,
        )
        if not body:
            return current or _get_settings(client)
        response = client.patch("/api/me/settings", json=body)
        raise_for(response)
        return UserSettings.model_validate_json(response.content)

    saved = call(url, work)
    if as_json:
        typer.echo(saved.model_dump_json(indent=2))
    else:
        show_settings(saved)


@app.command("preview")
def preview(
    text: Annotated[
        str | None, typer.Argument(help="The text; read from stdin if omitted.")
    ] = None,
    url: UrlOpt = None,
) -> None:
    """TEXT with your saved replacements applied, as a transcript would get it."""
    text = text_or_stdin(text, errors).rstrip("\n")

    def work(client: httpx.Client) -> PreviewResult:
        response = client.post("/api/me/settings/preview", json={"text": text})
        raise_for(response)
        return PreviewResult.model_validate_json(response.content)

    result = call(url, work)
    console.print(result.text, markup=False, highlight=False, soft_wrap=True)


me_data_cmd.register(app)
