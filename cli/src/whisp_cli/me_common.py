"""What every `whisp me …` command shares: the consoles, `--url`, and one
way to run a request against the gateway and turn any failure into its message and exit
code (`whisp_cli.desk.rest`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, TypeVar

import httpx
import typer
from rich.console import Console

from whisp_cli.desk.gateway import GatewayError
from whisp_cli.desk.rest import fail, rest_client

T = TypeVar("T")

console = Console()
errors = Console(stderr=True)

UrlOpt = Annotated[
    str | None,
    typer.Option("--url", help="The gateway (default: cli.gateway_url, as `whisp up` serves it)."),
]


def call(url: str | None, work: Callable[[httpx.Client], T]) -> T:
    """Run `work(client)` against the gateway; any failure becomes the message and exit."""
    base, http = rest_client(url)
    try:
        with http as client:
            return work(client)
    except (GatewayError, httpx.HTTPError) as exc:
        raise fail(exc, base, errors) from exc
