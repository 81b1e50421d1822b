"""`whisp hotkey`: options and help only (the work is imported when it runs)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

HELP = (
    "Global hotkey daemon: hold Ctrl+Shift+R in any application, talk, release; the "
    "transcript is copied to the clipboard (and typed into the focused window with --type)."
    "\n\n"
    "Needs an X display: pynput watches keys through X's RECORD extension. Install xclip "
    "(clipboard), xdotool (--type) and libnotify-bin (notifications)."
    "\n\n"
    "Wayland: a compositor gives ordinary programs no global key-up (only a portal "
    "could), so hold-to-talk cannot work there; under XWayland the hotkey is seen only "
    "while an X11 window has focus. With WAYLAND_DISPLAY and no DISPLAY the daemon runs "
    "in toggle mode without a key listener: bind a shortcut in your desktop's keyboard "
    "settings to `whisp hotkey --toggle-running` (one press starts, the next stops)."
)


def register(app: typer.Typer) -> None:
    app.command(help=HELP)(hotkey)


def hotkey(
    mode: Annotated[
        Literal["hold", "toggle"] | None,
        typer.Option(help="hold: talk while held; toggle: press to start, press to stop."),
    ] = None,
    keys: Annotated[
        str | None, typer.Option(help='The chord, e.g. "<ctrl>+<shift>+r" (hotkey_app.keys).')
    ] = None,
    type_text: Annotated[
        bool | None,
        typer.Option("--type/--no-type", help="Also type the transcript into the focused window."),
    ] = None,
    input_file: Annotated[
        Path | None,
        typer.Option("--input", help="Replay this audio file (in real time) instead of a mic."),
    ] = None,
    device: Annotated[
        str | None, typer.Option(help="Input device: index or name (see `whisp devices`).")
    ] = None,
    agent: Annotated[str | None, typer.Option(help="Send each transcript to this agent.")] = None,
    url: Annotated[str | None, typer.Option(help="Gateway URL (default: cli.gateway_url).")] = None,
    tray: Annotated[
        bool | None, typer.Option("--tray/--no-tray", help="Show a tray icon if possible.")
    ] = None,
    notify: Annotated[
        bool | None, typer.Option("--notify/--no-notify", help="Desktop notifications.")
    ] = None,
    sound: Annotated[
        bool | None, typer.Option("--sound/--no-sound", help="A short tone on start and stop.")
    ] = None,
    install_autostart: Annotated[
        bool,
        typer.Option(
            "--install-autostart", help="Start this daemon (with these options) at login; exit."
        ),
    ] = False,
    toggle_running: Annotated[
        bool,
        typer.Option(
            "--toggle-running",
            help="Start/stop the running daemon's recording (bind to a desktop shortcut); exit.",
        ),
    ] = False,
    stream: Annotated[
        bool | None,
        typer.Option(
            "--stream/--no-stream",
            help="Stream while the chord is held (default: cli.stream); --no-stream uploads.",
        ),
    ] = None,
    timings_file: Annotated[
        Path | None, typer.Option(hidden=True, help="Append per-turn latencies as JSON lines.")
    ] = None,
) -> None:
    if toggle_running:  # a desktop shortcut runs this: keep it instant (no audio imports)
        from whisp_cli.hotkey.autostart import pid_path, signal_running  # noqa: PLC0415

        try:
            pid = signal_running(pid_path())
        except (ProcessLookupError, PermissionError) as exc:
            typer.echo(f"whisp hotkey: {exc}", err=True)
            raise typer.Exit(1) from exc
        typer.echo(f"toggled the recording of `whisp hotkey` (pid {pid})")
        return
    from whisp_cli.hotkey.launch import HotkeyArgs, launch  # noqa: PLC0415

    launch(
        HotkeyArgs(
            mode=mode,
            keys=keys,
            type_text=type_text,
            input_file=input_file,
            device=device,
            agent=agent,
            url=url,
            tray=tray,
            notify=notify,
            sound=sound,
            install_autostart=install_autostart,
            timings_file=timings_file,
            stream=stream,
        )
    )
