"""`whisp`: the front door for people (local stack, and later record/hotkey/agents)."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from whisp_cli import agent_cmd, dlq_cmd, me_cmd, users_cmd
from whisp_cli.hotkey import command as hotkey_cmd
from whisp_cli.record import command as record_cmd
from whisp_cli.stack import Stack, StackError, plan, wyoming_port
from whisp_cli.stack_state import health, left_behind, read_state, state_path, supervisor_alive
from whisp_cli.supervisor import POLL_S, Event, RestartPolicy, Supervisor

app = typer.Typer(
    help="WhisPTT: push-to-talk speech-to-text with LLM agents.", no_args_is_help=True
)
console = Console()
agent_cmd.register(app)
app.add_typer(users_cmd.app, name="users")
app.add_typer(dlq_cmd.app, name="dlq")
app.add_typer(me_cmd.app, name="me")
record_cmd.register(app)
hotkey_cmd.register(app)


@app.callback()
def _root() -> None:
    """Keeps `up` a subcommand even while it is the only one."""


def stack_table(supervisor: Supervisor) -> Table:
    stack = supervisor.stack
    table = Table(title="WhisPTT services", show_lines=False)
    table.add_column("service")
    table.add_column("pid", justify="right")
    table.add_column("state")
    table.add_column("ready check", overflow="fold")
    table.add_column("restarts", justify="right")
    doors = {spec.name: spec.doors for spec in stack.specs}
    for row in supervisor.services():
        pid, state = ("-" if row["pid"] is None else str(row["pid"])), row["state"]
        if row.get("external"):
            pid, state = "external", "-"
        check = row.get("ready_url") or str(stack.redis_url)
        table.add_row(row["name"], pid, state, check, str(row["restarts"]))
        for door, uri in doors.get(row["name"], ()):  # served by the process above
            table.add_row(door, "-", state, uri, "-")
    return table


EVENT_STYLES = {"exited": "yellow", "ready": "green", "gave_up": "bold red"}


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
    redis_url: Annotated[
        str | None,
        typer.Option(envvar="REDIS_URL", help="Use this Redis instead of starting a private one."),
    ] = None,
    wyoming: Annotated[
        int | None,
        typer.Option(
            "--wyoming-port",
            envvar="WHISP_WEB__WYOMING__PORT",
            help="Port of the Wyoming server for Home Assistant (0: any free one) [default: "
            "10300, or a free port when 10300 is taken].",
        ),
    ] = None,
    restart: Annotated[
        bool,
        typer.Option(
            "--restart/--no-restart",
            envvar="WHISP_UP_RESTART",
            help="Restart a service that exits (backoff 0.5 s doubling to 10 s; give up on it "
            "after 5 exits in a row, each before it stayed up 60 s; giving up on Redis or the "
            "gateway stops the stack). --no-restart: the first exit stops the stack.",
        ),
    ] = True,
) -> None:
    """Start Redis (unless --redis-url/REDIS_URL names one), the audio service, N workers, the
    agent service and the gateway; restart what exits; stop them all on Ctrl+C."""
    try:
        wyoming_at, moved = wyoming_port(wyoming)
    except StackError as exc:
        console.print(f"[bold red]{escape(str(exc))}[/]", soft_wrap=True)
        raise typer.Exit(1) from exc
    if moved:
        console.print(f"[yellow]{escape(moved)}[/]", soft_wrap=True)
    stack = Stack(
        plan(workers, port, wyoming_at),
        redis_url=redis_url or None,
        data_dir=data_dir,
        log_dir=None if logs_to_terminal else (log_dir or data_dir / "logs"),
        die_with_parent=True,
    )
    started = False

    def report(event: Event) -> None:
        style = EVENT_STYLES[event.kind]
        console.print(f"[{style}]{escape(event.message)}[/]", soft_wrap=True)
        if started and event.kind in ("ready", "gave_up"):
            console.print(stack_table(supervisor))

    supervisor = Supervisor(
        stack,
        RestartPolicy(enabled=restart),
        on_event=report,
        state_file=state_path(data_dir),
        gateway_url=f"http://127.0.0.1:{port}",
    )
    # SIGTERM behaves like Ctrl+C; both may arrive while starting, too.
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if inherited as ignored
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        with console.status("Starting WhisPTT…"):
            supervisor.start()
        started = True
        console.print(stack_table(supervisor))
        if stack.log_dir is not None:
            console.print(f"Logs: {stack.log_dir}/<service>.log")
        console.print(f"[bold green]WhisPTT is up:[/] http://127.0.0.1:{port}/  (Ctrl+C stops)")
        while True:
            supervisor.poll()
            time.sleep(POLL_S)
    except KeyboardInterrupt:
        pass
    except StackError as exc:
        console.print(f"[bold red]Stack failed:[/] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(1) from exc
    finally:
        # A second Ctrl+C must not abandon half-stopped children.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        with console.status("Stopping…"):
            stack.stop()
            supervisor.close()
        console.print("Stopped.")


@app.command()
def status(
    data_dir: Annotated[
        Path, typer.Option(help="The data dir the stack was started with (whisp up).")
    ] = Path("data"),
    as_json: Annotated[bool, typer.Option("--json", help="The state and health as JSON.")] = False,
) -> None:
    """Show the stack `whisp up` runs: each service's pid, port, state and health (/readyz, Redis
    PING). Exit code 0: all ready; 1: something is not; 3: not running."""
    path = state_path(data_dir)
    state = read_state(path)
    if state is None or not supervisor_alive(state):
        why = f"no {path}" if state is None else (
            f"stale state in {path}: its whisp up (pid {state['supervisor']['pid']}, started "
            f"{state.get('started_at')}) is gone"
        )  # fmt: skip
        leftover = [] if state is None else left_behind(state)
        if as_json:
            typer.echo(json.dumps({"running": False, "reason": why, "left_behind": leftover}))
        else:
            console.print(f"WhisPTT is not running ({why})", soft_wrap=True)
            for name, left_pid in leftover:
                console.print(f"  still running from it: {name} (pid {left_pid})")
        raise typer.Exit(3)
    rows = health(state)
    if as_json:
        state["running"] = True
        for row, service in zip(rows, state["services"], strict=True):
            service["health"], service["ready"] = row.health, row.ready
        typer.echo(json.dumps(state, indent=2))
    else:
        table = Table(title="WhisPTT services")
        for column in ("service", "pid", "port", "state", "health", "restarts"):
            table.add_column(column, justify="right" if column in ("pid", "port") else "left")
        for row in rows:
            pid = "-" if row.pid is None else str(row.pid)
            style = "green" if row.ready else "red"
            table.add_row(row.name, pid, str(row.port or "-"), row.state,
                          f"[{style}]{escape(row.health)}[/]", str(row.restarts))  # fmt: skip
        console.print(table)
        console.print(
            f"WhisPTT is running: {state.get('gateway_url')}/  (whisp up pid "
            f"{state['supervisor']['pid']}, since {state.get('started_at')})",
            soft_wrap=True,
        )
    raise typer.Exit(0 if all(row.ready for row in rows) else 1)


if __name__ == "__main__":
    app()
