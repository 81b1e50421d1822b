"""`whisp users add|list|remove`: the gateway's users, straight in its database.

The gateway's settings say where the database is (`web.database_url` in config.yaml, or
`DATABASE_URL`); the schema is created if needed. A new user's API token is printed once:
only its hash is stored, so a lost token means removing the user and adding them again.
The gateway package is imported inside the commands, so `whisp` starts without it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from whisp_gateway.repository import Repository
    from whisp_gateway.repository.models import User

T = TypeVar("T")

app = typer.Typer(help="Gateway users and their API tokens.", no_args_is_help=True)
console = Console()
errors = Console(stderr=True)

NameArg = Annotated[str, typer.Argument(help="A unique user name (at most 128 characters).")]


def _with_repository(work: Callable[[Repository], Awaitable[T]]) -> T:
    try:
        from whisp_gateway.repository import open_repository  # noqa: PLC0415 (lazy)
        from whisp_gateway.settings import GatewaySettings  # noqa: PLC0415
    except ImportError as exc:  # a CLI-only install
        errors.print(f"[bold red]The gateway package is not installed:[/] {exc}")
        raise typer.Exit(2) from exc

    async def run() -> T:
        repo = open_repository(GatewaySettings().database_url)
        try:
            await repo.create_schema()
            return await work(repo)
        finally:
            await repo.close()

    return asyncio.run(run())


@app.command("add")
def add(
    name: NameArg,
    rate_limit: Annotated[
        str | None,
        typer.Option(
            "--rate-limit",
            help="This user's own limit on uploads and agent runs, e.g. 5000/hour (a "
            "service account); default: the gateway's web.rate_limit.",
        ),
    ] = None,
    burst: Annotated[
        int | None,
        typer.Option(min=1, help="Requests at once before the rate applies (with --rate-limit)."),
    ] = None,
) -> None:
    """Create a user and print their API token (shown only this once)."""
    name = name.strip()
    if not 0 < len(name) <= 128:
        errors.print("[bold red]The name must have 1 to 128 characters.[/]")
        raise typer.Exit(2)
    if rate_limit is not None:
        try:
            from whisp_gateway.ratelimit import Limit  # noqa: PLC0415 (lazy, like the repo)

            Limit.parse(rate_limit, burst or 1)
        except ValueError as exc:
            errors.print(f"[bold red]{exc}[/]")
            raise typer.Exit(2) from exc

    async def create(repo: Repository) -> tuple[User, str] | None:
        if any(user.name == name for user in await repo.list_users()):
            return None
        return await repo.add_user(name, rate_limit, burst)

    created = _with_repository(create)
    if created is None:
        errors.print(f"[bold red]A user named {name!r} already exists.[/]")
        raise typer.Exit(1)
    user, token = created
    limit = f", limited to {user.rate_limit}" if user.rate_limit else ""
    console.print(f"Created user [bold]{user.name}[/] ({user.id}{limit}). Their API token:")
    console.print(token, markup=False, highlight=False, soft_wrap=True)
    console.print(
        "[yellow]Store it now: it is not shown again.[/] "
        "Use it as `Authorization: Bearer <token>` or log in with it on the web page."
    )


@app.command("list")
def list_users() -> None:
    """Every user (tokens are stored hashed and cannot be shown)."""
    found = _with_repository(lambda repo: repo.list_users())
    if not found:
        console.print("No users yet: the gateway runs in single-user mode on loopback.")
        return
    table = Table(title="WhisPTT users")
    table.add_column("name")
    table.add_column("id")
    table.add_column("created (UTC)")
    for user in found:
        created = f"{user.created_at:%Y-%m-%d %H:%M}" if user.created_at else ""
        table.add_row(user.name, user.id, created)
    console.print(table)


@app.command("remove")
def remove(name: NameArg) -> None:
    """Delete a user: their token and browser sessions stop working at once."""
    if not _with_repository(lambda repo: repo.remove_user(name)):
        errors.print(f"[bold red]No user named {name!r}.[/]")
        raise typer.Exit(1)
    console.print(f"Removed user [bold]{name}[/].")
