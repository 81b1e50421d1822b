"""`whisp`: the front door for people (local stack, and later record/hotkey/agents)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from whisp_cli import agent_cmd, users_cmd
from whisp_cli.hotkey import command as hotkey_cmd
from whisp_cli.record import command as record_cmd
from whisp_cli.stack import Stack, StackError, plan

app = typer.Typer(
    help="WhisPTT: push-to-talk speech-to-text with LLM agents.", no_args_is_help=True
)
console = Console()
agent_cmd.register(app)
app.add_typer(users_cmd.app, name="users")
record_cmd.register(app)
hotkey_cmd.register(app)


@app.callback()
def _root() -> None:
    """Keeps `up` a subcommand even while it is the only one."""


def stack_table(stack: Stack) -> Table:
    table = Table(title="WhisPTT services", show_lines=False)
    table.add_column("service")
    table.add_column("pid", justify="right")
    table.add_column("ready check", overflow="fold")
    table.add_row(
        "redis",
        str(stack.redis.process.pid) if stack.redis and stack.redis.process else "external",
        str(stack.redis_url),
    )
    for spec in stack.specs:
        table.add_row(spec.name, str(stack.processes[spec.name].pid), f"{spec.url}/readyz")
    return table


@app.command()
def up(
    workers: Annotated[int, typer.Option(min=1, help="Transcription worker processes.")] = 2,
    port: Annotated[
        int, typer.Option(envvar="WHISP_WEB__PORT", help="Port of the gateway (the web page).")
    ] = 8000,
    data_dir: Annotated[Path, typer.Option(help="Where Redis and audio keep their files.")] = Path(
        "data"
    ),
    log_dir: Annotated[
        Path | None,
        typer.Option(
            help="Each service's JSON log goes to DIR/<service>.log [default: DATA_DIR/logs]."
        ),
    ] = None,
    logs_to_terminal: Annotated[
        bool, typer.Option("--logs-to-terminal", help="Interleave every service's log here.")
    ] = False,
) -> None:
    """Start Redis (unless REDIS_URL is set), the audio service, N workers, the agent service and
    the gateway; stop them all on Ctrl+C."""
    stack = Stack(
        plan(workers, port),
        redis_url=os.environ.get("REDIS_URL"),
        data_dir=data_dir,
        log_dir=None if logs_to_terminal else (log_dir or data_dir / "logs"),
    )
    # SIGTERM behaves like Ctrl+C; both may arrive while starting, too.
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if inherited as ignored
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        with console.status("Starting WhisPTT…"):
            stack.start()
        console.print(stack_table(stack))
        if stack.log_dir is not None:
            console.print(f"Logs: {stack.log_dir}/<service>.log")
        console.print(f"[bold green]WhisPTT is up:[/] http://127.0.0.1:{port}/  (Ctrl+C stops)")
        while True:
            stack.raise_if_dead()
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    except StackError as exc:
        console.print(f"[bold red]Stack failed:[/] {exc}")
        raise typer.Exit(1) from exc
    finally:
        # A second Ctrl+C must not abandon half-stopped children.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        with console.status("Stopping…"):
            stack.stop()
        console.print("Stopped.")


if __name__ == "__main__":
    app()
