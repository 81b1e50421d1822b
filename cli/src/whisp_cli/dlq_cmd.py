"""`whisp dlq list|show|replay|drop`: the dead-letter streams, for whoever runs the stack.

Which Redis: `--redis-url`, else `REDIS_URL` / `bus.redis_url` when set, else the one the
local `whisp up` runs (its state file). Replaying puts an entry back for the group that gave
up on it — after the cause is fixed (a model installed, a provider key set) — and it then
completes like any other: the user's transcript goes from failed to done
(`whisp_shared.dead_letters` says how duplicates are still avoided).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from redis.asyncio import Redis
from redis.exceptions import RedisError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from whisp_cli.stack_state import read_state, state_path, supervisor_alive
from whisp_shared.config import BusSettings
from whisp_shared.dead_letters import (
    SOURCE_STREAMS,
    DeadLetter,
    NotFound,
    drop,
    get_dead,
    list_dead,
    replay,
)
from whisp_shared.redis_client import open_redis

T = TypeVar("T")

app = typer.Typer(help="Dead-lettered work: list, show, replay, drop.", no_args_is_help=True)
console = Console()
errors = Console(stderr=True)

RedisUrl = Annotated[
    str | None,
    typer.Option("--redis-url", help="Redis to use (default: REDIS_URL, config, or whisp up's)."),
]
DataDir = Annotated[Path, typer.Option(help="The data dir of the local stack (whisp up).")]
Ids = Annotated[list[str], typer.Argument(help="Dead-letter ids, as `whisp dlq list` shows.")]


def _redis_url(explicit: str | None, data_dir: Path) -> str:
    if explicit:
        return explicit
    if os.environ.get("REDIS_URL") or os.environ.get("WHISP_BUS__REDIS_URL"):
        return BusSettings().redis_url
    state = read_state(state_path(data_dir))
    if state is not None and supervisor_alive(state):
        for service in state.get("services", []):
            if service.get("name") == "redis" and service.get("url"):
                return str(service["url"])
    return BusSettings().redis_url


def _run(url: str, work: Callable[[Redis], Awaitable[T]]) -> T:
    async def go() -> T:
        redis = open_redis(url, socket_connect_timeout=3.0)
        try:
            return await work(redis)
        finally:
            await redis.aclose()

    try:
        return asyncio.run(go())
    except NotFound as exc:
        errors.print(f"[bold red]No dead letter {escape(str(exc))}[/] (see `whisp dlq list`).")
        raise typer.Exit(1) from exc
    except RedisError as exc:
        errors.print(f"[bold red]Redis at {escape(url)} is not answering:[/] {escape(str(exc))}")
        raise typer.Exit(2) from exc


def _streams(stream: str | None) -> tuple[str, ...]:
    if stream is None:
        return SOURCE_STREAMS
    name = stream if stream.startswith("whisp:") else f"whisp:{stream}"
    if name not in SOURCE_STREAMS:
        short = ", ".join(s.removeprefix("whisp:") for s in SOURCE_STREAMS)
        raise typer.BadParameter(f"unknown stream {stream!r}; one of: {short}")
    return (name,)


@app.command("list")
def list_command(
    stream: Annotated[
        str | None, typer.Option(help="Only this stream (recordings, transcripts, …).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="Newest N per stream.")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    redis_url: RedisUrl = None,
    data_dir: DataDir = Path("data"),
) -> None:
    """Dead letters, oldest first: where from, which recording and user, why."""
    streams = _streams(stream)
    letters = _run(_redis_url(redis_url, data_dir), lambda r: list_dead(r, streams, limit))
    if as_json:
        for letter in letters:
            typer.echo(letter.model_dump_json())
        return
    if not letters:
        console.print("No dead letters.")
        return
    table = Table(title=f"Dead letters ({len(letters)})")
    for column in ("id", "stream", "group", "type", "recording", "user", "tries", "error"):
        table.add_column(column, overflow="fold")
    for letter in letters:
        table.add_row(
            letter.id,
            letter.stream.removeprefix("whisp:"),
            letter.group,
            letter.type,
            letter.recording_id or "-",
            letter.user_id or "-",
            str(letter.deliveries),
            escape(letter.error[:120]),
        )
    console.print(table)


@app.command("show")
def show(
    entry_id: Annotated[str, typer.Argument(help="A dead-letter id.")],
    redis_url: RedisUrl = None,
    data_dir: DataDir = Path("data"),
) -> None:
    """One dead letter in full, as JSON (the original event included)."""
    letter = _run(_redis_url(redis_url, data_dir), lambda r: get_dead(r, entry_id))
    typer.echo(json.dumps(letter.model_dump(mode="json"), indent=2))


async def _each(redis: Redis, ids: list[str], act: Callable[[DeadLetter], Awaitable[str]]) -> None:
    letters = [await get_dead(redis, entry_id) for entry_id in ids]  # all found, or none done
    for letter in letters:
        console.print(await act(letter))


@app.command("replay")
def replay_command(
    ids: Ids,
    redis_url: RedisUrl = None,
    data_dir: DataDir = Path("data"),
) -> None:
    """Put entries back on their stream, for the group that gave up on them."""
    maxlen = BusSettings().stream_maxlen

    def work(redis: Redis) -> Awaitable[None]:
        async def one(letter: DeadLetter) -> str:
            new_id = await replay(redis, letter, maxlen)
            return f"replayed {letter.id} → {letter.stream} {new_id} ({letter.group})"

        return _each(redis, ids, one)

    _run(_redis_url(redis_url, data_dir), work)


@app.command("drop")
def drop_command(
    ids: Ids,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask.")] = False,
    redis_url: RedisUrl = None,
    data_dir: DataDir = Path("data"),
) -> None:
    """Forget entries for good (their users were told when they failed)."""
    if not yes:
        typer.confirm(f"Drop {len(ids)} dead letter(s) for good?", abort=True)

    def work(redis: Redis) -> Awaitable[None]:
        async def one(letter: DeadLetter) -> str:
            await drop(redis, letter)
            return f"dropped {letter.id}"

        return _each(redis, ids, one)

    _run(_redis_url(redis_url, data_dir), work)
