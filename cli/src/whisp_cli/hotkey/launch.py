"""Wiring for `whisp hotkey`: settings, display checks, listener, tray, signals.

Everything started here is stopped in one `finally`: the key listener, the tray, the
device, the event stream, the pid file and the signal handlers.
"""

from __future__ import annotations

import shutil
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Literal

import typer

from whisp_cli.desk.agent_choice import resolve_agent
from whisp_cli.desk.capture import Capture
from whisp_cli.desk.events import EventFeed
from whisp_cli.desk.gateway import GatewayClient, GatewayError
from whisp_cli.desk.logs import quiet_logging
from whisp_cli.desk.realtime import stream_target
from whisp_cli.desk.settings import CliSettings, HotkeySettings
from whisp_cli.desk.sources import file_source, microphone, parse_device
from whisp_cli.desk.turn import TurnDeps
from whisp_cli.hotkey.autostart import (
    install_autostart,
    pid_path,
    remove_pid,
    write_pid,
)
from whisp_cli.hotkey.daemon import DaemonOptions, HotkeyDaemon, Output
from whisp_cli.hotkey.deliver import Delivery
from whisp_cli.hotkey.listener import (
    WAYLAND_NOTE,
    XWAYLAND_NOTE,
    ChordListener,
    HotkeyError,
    display_kind,
)
from whisp_cli.hotkey.tray import Tray
from whisp_recorder import AudioSource, SourceError
from whisp_shared.options import RecordingOptions


@dataclass(frozen=True)
class HotkeyArgs:
    mode: Literal["hold", "toggle"] | None = None
    keys: str | None = None
    type_text: bool | None = None
    input_file: Path | None = None
    device: str | None = None
    agent: str | None = None
    url: str | None = None
    tray: bool | None = None
    notify: bool | None = None
    sound: bool | None = None
    install_autostart: bool = False
    timings_file: Path | None = None
    stream: bool | None = None


def fail(output: Output, message: str) -> typer.Exit:
    output.line(f"whisp hotkey: {message}", error=True)
    return typer.Exit(1)


def launch(args: HotkeyArgs) -> None:
    output = Output(sys.stdout, sys.stderr)
    quiet_logging("whisp-hotkey")
    if args.install_autostart:
        path = install_autostart(autostart_argv(args))
        output.line(f"`whisp hotkey` will start at login: {path}")
        return
    cli, hotkeys = CliSettings(), HotkeySettings()
    toggle, listen = check_display(output, (args.mode or hotkeys.press_mode) == "toggle")
    daemon = build_daemon(args, cli, hotkeys, output, toggle)
    try:
        daemon.deps.feed.start()  # before anything is uploaded, so no event can be missed
        if listen:
            grace_s = hotkeys.release_grace_ms / 1000
            daemon.listener = ChordListener(daemon.options.keys_label, grace_s, daemon.queue.put)
            daemon.listener.start()
        if args.tray if args.tray is not None else hotkeys.tray:
            daemon.tray = start_tray(output, daemon)
        serve(daemon)
    except (GatewayError, HotkeyError) as exc:
        raise fail(output, str(exc)) from exc
    finally:
        if daemon.listener is not None:
            daemon.listener.stop()
        if daemon.tray is not None:
            daemon.tray.stop()
        daemon.capture.close()
        daemon.deps.feed.close()
        daemon.deps.client.close()
    output.line("stopped")


def check_display(output: Output, toggle: bool) -> tuple[bool, bool]:
    """(toggle mode?, can a key listener run?) for this session; explains the limits."""
    kind = display_kind()
    if kind == "none":
        raise fail(output, "no display: `whisp hotkey` needs an X session (DISPLAY is not set)")
    if kind == "wayland":
        output.line(WAYLAND_NOTE)
        return True, False
    if kind == "xwayland":
        output.line(XWAYLAND_NOTE)
    return toggle, True


def build_daemon(
    args: HotkeyArgs, cli: CliSettings, hotkeys: HotkeySettings, output: Output, toggle: bool
) -> HotkeyDaemon:
    delivery = Delivery(
        clipboard=hotkeys.clipboard,
        type_text=hotkeys.type_text if args.type_text is None else args.type_text,
        notify=hotkeys.notify if args.notify is None else args.notify,
        sound=hotkeys.sound if args.sound is None else args.sound,
        warn=lambda message: output.line(f"note: {message}", error=True),
    )
    source = pick_source(output, args, cli)
    gateway_url = args.url or cli.gateway_url
    token = cli.token.get_secret_value() if cli.token else None
    client = GatewayClient(gateway_url, token)
    choice = resolve_agent(args.agent, cli.agent, client.my_settings)
    if choice.note:
        output.line(f"note: {choice.note}")
    options = RecordingOptions(agent_id=choice.agent, session_id=cli.session)
    stream_url, why_not = stream_target(cli, gateway_url, options, args.stream)
    if why_not:
        output.line(f"note: {why_not}")
    deps = TurnDeps(
        client,
        EventFeed(gateway_url, token),
        options,
        transcript_timeout_s=cli.transcript_timeout_s,
        agent_timeout_s=cli.agent_timeout_s,
        stream_url=stream_url,
    )
    deps.feed.on_partial = deps.router
    return HotkeyDaemon(
        Capture(source, preopen=False, max_duration_s=cli.max_duration_s),
        deps,
        delivery,
        output,
        DaemonOptions(
            toggle=toggle, keys_label=args.keys or hotkeys.keys, timings_file=args.timings_file
        ),
    )


def serve(daemon: HotkeyDaemon) -> None:
    """Run until SIGINT/SIGTERM (or the tray's Quit); SIGUSR1 is a toggle press."""
    pidfile = pid_path()
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)}

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGUSR1:
            daemon.toggle()
        else:
            daemon.stop()

    try:
        for sig in saved:
            signal.signal(sig, on_signal)
        write_pid(pidfile)
        daemon.run()
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
        remove_pid(pidfile)


def pick_source(output: Output, args: HotkeyArgs, cli: CliSettings) -> AudioSource:
    try:
        if args.input_file is not None:
            return file_source(args.input_file)
        return microphone(parse_device(args.device or cli.device))
    except SourceError as exc:
        raise fail(output, str(exc)) from exc


def start_tray(output: Output, daemon: HotkeyDaemon) -> Tray | None:
    try:
        return Tray.start(on_quit=daemon.stop)
    except RuntimeError as exc:
        output.line(f"note: {exc}; carrying on without one", error=True)
        return None


def autostart_argv(args: HotkeyArgs) -> list[str]:
    """The command line the login session will run: this executable, these options."""
    exe = shutil.which("whisp") or str(Path(sys.argv[0]).resolve())
    argv = [exe, "hotkey"]
    for flag, value in (
        ("--mode", args.mode),
        ("--keys", args.keys),
        ("--device", args.device),
        ("--agent", args.agent),
        ("--url", args.url),
        ("--input", str(args.input_file.resolve()) if args.input_file else None),
    ):
        if value is not None:
            argv += [flag, value]
    for name, switch in (
        ("stream", args.stream),
        ("type", args.type_text),
        ("tray", args.tray),
        ("notify", args.notify),
        ("sound", args.sound),
    ):
        if switch is not None:
            argv.append(f"--{name}" if switch else f"--no-{name}")
    return argv
