"""Wiring for `whisp record` and `whisp devices`: settings, source, gateway, terminal.

Every resource opened here is closed in one `finally`, in the order that keeps the
person safe: the device first, then the terminal (by `raw_keys`), then the network.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from whisp_cli.desk.agent_choice import resolve_agent
from whisp_cli.desk.capture import Capture
from whisp_cli.desk.events import EventFeed
from whisp_cli.desk.gateway import GatewayClient, GatewayError
from whisp_cli.desk.logs import quiet_logging
from whisp_cli.desk.realtime import stream_target
from whisp_cli.desk.settings import CliSettings
from whisp_cli.desk.sources import NO_AUDIO_HINT, file_source, microphone, parse_device
from whisp_cli.desk.turn import TurnDeps
from whisp_cli.record.answers import AnswerBoard
from whisp_cli.record.app import RecordOptions, RecordSession
from whisp_cli.record.terminal import TerminalClosed, raw_keys
from whisp_recorder import AudioSource, SourceError
from whisp_shared.options import RecordingOptions

console = Console()
errors = Console(stderr=True)


def fail(message: str) -> typer.Exit:
    errors.print(f"[bold red]whisp:[/] {message}")
    return typer.Exit(1)


def launch(
    *,
    agent: str | None,
    session: str | None,
    device: str | None,
    input_file: Path | None,
    toggle: bool,
    url: str | None,
    timings_file: Path | None,
    stream: bool | None = None,
) -> None:
    quiet_logging("whisp-record")
    settings = CliSettings()
    if not sys.stdin.isatty():
        raise fail(
            "`whisp record` reads keys from a terminal, and stdin is not one. To send a file "
            "without a terminal, POST it to /api/recordings."
        )
    gateway_url = url or settings.gateway_url
    token = settings.token.get_secret_value() if settings.token else None
    source, label, preopen = pick_source(input_file, device or settings.device, settings)
    client = GatewayClient(gateway_url, token)
    choice = resolve_agent(agent, settings.agent, client.my_settings)
    if choice.note:
        console.print(f"[yellow]note:[/] {escape(choice.note)}", soft_wrap=True)
    options = RecordingOptions(agent_id=choice.agent, session_id=session or settings.session)
    feed = EventFeed(gateway_url, token)
    capture = Capture(source, preopen=preopen, max_duration_s=settings.max_duration_s)
    stream_url, why_not = stream_target(settings, gateway_url, options, stream)
    if why_not:
        console.print(f"[yellow]note:[/] {why_not}")
    deps = TurnDeps(
        client,
        feed,
        options,
        transcript_timeout_s=settings.transcript_timeout_s,
        agent_timeout_s=settings.agent_timeout_s,
        stream_url=stream_url,
    )
    feed.on_partial = deps.router
    answers = AnswerBoard()
    feed.on_answer = answers
    run_options = RecordOptions(
        toggle=toggle,
        initial_release_s=settings.initial_release_ms / 1000,
        repeat_release_s=settings.repeat_release_ms / 1000,
        source_label=label,
        timings_file=timings_file,
    )
    recorder_session = RecordSession(capture, deps, run_options, console, answers)
    try:
        with console.status(f"Connecting to {gateway_url}…"):
            feed.start()  # before any upload, so no event can be missed
        capture.ready()
        with raw_keys(sys.stdin) as keys:
            try:
                recorder_session.run(keys)
            finally:
                recorder_session.close()
        if pending := recorder_session.in_flight():
            console.print(
                f"[yellow]{pending} recording(s) still being processed; their transcripts "
                "will be in your history.[/]"
            )
    except (GatewayError, SourceError) as exc:
        raise fail(str(exc)) from exc
    except TerminalClosed:
        pass
    finally:
        capture.close()
        feed.close()
        client.close()


def pick_source(
    input_file: Path | None, device: str | None, settings: CliSettings
) -> tuple[AudioSource, str, bool]:
    """(source, label for the screen, keep it open between recordings?)."""
    try:
        if input_file is not None:
            # A file restarts on every open, so it is opened on each press, never ahead.
            return file_source(input_file), f"replaying {input_file.name}", False
        chosen = parse_device(device)
        label = "default microphone" if chosen is None else f"device {chosen}"
        return microphone(chosen), label, settings.preopen_device
    except SourceError as exc:
        raise fail(str(exc)) from exc


def show_devices() -> None:
    quiet_logging("whisp-devices")
    try:
        from whisp_recorder.devices import list_input_devices  # noqa: PLC0415
    except OSError as exc:  # libportaudio2 missing: sounddevice fails at import
        raise fail(f"PortAudio is not installed ({exc}); install libportaudio2") from exc
    found = list_input_devices()
    if not found:
        raise fail(NO_AUDIO_HINT)
    table = Table(title="Input devices")
    table.add_column("#", justify="right")
    table.add_column("name")
    table.add_column("host API")
    table.add_column("channels", justify="right")
    table.add_column("rate", justify="right")
    for dev in found:
        mark = " [bold green](default)[/]" if dev.is_default else ""
        table.add_row(
            str(dev.index),
            f"{dev.name}{mark}",
            dev.host_api,
            str(dev.max_input_channels),
            f"{dev.default_sample_rate:.0f}",
        )
    console.print(table)
    console.print("Use one with `whisp record --device N` (or a name: --device pulse).")
