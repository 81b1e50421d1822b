"""`whisp record` and `whisp devices`: options and help only.

The audio stack (numpy, PyAV, PortAudio) is imported when a command runs, not when the
`whisp` app is built, so `whisp up` and `whisp --help` do not pay ~1 s for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    app.command()(record)
    app.command()(devices)


def record(
    agent: Annotated[str | None, typer.Option(help="Send each transcript to this agent.")] = None,
    session: Annotated[
        str | None, typer.Option(help="Agent session name, so it remembers earlier turns.")
    ] = None,
    device: Annotated[
        str | None, typer.Option(help="Input device: index or name (see `whisp devices`).")
    ] = None,
    input_file: Annotated[
        Path | None,
        typer.Option("--input", help="Replay this audio file (in real time) instead of a mic."),
    ] = None,
    toggle: Annotated[
        bool, typer.Option("--toggle", help="SPACE starts and stops instead of hold-to-talk.")
    ] = False,
    url: Annotated[str | None, typer.Option(help="Gateway URL (default: cli.gateway_url).")] = None,
    stream: Annotated[
        bool | None,
        typer.Option(
            "--stream/--no-stream",
            help="Stream while SPACE is held, words showing as you talk (default: cli.stream);"
            " --no-stream uploads each clip after release.",
        ),
    ] = None,
    timings_file: Annotated[
        Path | None, typer.Option(hidden=True, help="Append per-turn latencies as JSON lines.")
    ] = None,
) -> None:
    """Hold SPACE to talk, release to send; ESC, BACKSPACE or Ctrl+C leaves.

    Terminals send no key-up, so release is inferred when SPACE's auto-repeat stops:
    700 ms after a single press, ~120 ms once repeats flow (cli.initial_release_ms,
    cli.repeat_release_ms). With --toggle, SPACE starts and the next SPACE stops.
    While SPACE is held the audio streams to the gateway and the words show as they are
    heard; if the stream cannot open or breaks, the clip is uploaded on release instead.
    The API token comes from WHISP_TOKEN or WHISP_CLI__TOKEN (not needed on loopback
    before the first user exists).
    """
    from whisp_cli.record.launch import launch  # noqa: PLC0415 - see the module docstring

    launch(
        agent=agent,
        session=session,
        device=device,
        input_file=input_file,
        toggle=toggle,
        url=url,
        timings_file=timings_file,
        stream=stream,
    )


def devices() -> None:
    """List the input devices PortAudio sees (for `whisp record --device N`)."""
    from whisp_cli.record.launch import show_devices  # noqa: PLC0415

    show_devices()
