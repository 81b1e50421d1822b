"""The gateway's REST API for the one-shot commands (`whisp agent …`, `whisp me …`): one
client setup with the user's API token, and one way to report a failure.

Exit codes are the same for every such command: 2 when the gateway refused the input
(HTTP 400/422: a bad value, an unknown field, a missing confirmation), so a script can
tell "fix your arguments" from 1, "the gateway is away or broke" (and 401/403/404/429).
"""

from __future__ import annotations

import sys

import httpx
import typer
from rich.console import Console

from whisp_cli.desk.gateway import GatewayError, auth_headers, error_from, unreachable
from whisp_cli.desk.settings import CliSettings

REFUSED = frozenset({400, 422})
"""Statuses that mean the request itself was wrong: exit code 2."""


def rest_client(url: str | None, *, read_timeout_s: float = 300.0) -> tuple[str, httpx.Client]:
    """(base URL, client) for the gateway — the one door — with the user's API token
    (`WHISP_TOKEN`), like every desk command. The read timeout is long: an agent's answer
    or a whole export may take minutes."""
    settings = CliSettings()
    base = (url or settings.gateway_url).rstrip("/")
    token = settings.token.get_secret_value() if settings.token else None
    timeout = httpx.Timeout(10.0, read=read_timeout_s)
    return base, httpx.Client(base_url=base, headers=auth_headers(token), timeout=timeout)


def raise_for(response: httpx.Response) -> None:
    if response.status_code >= 400:
        raise error_from(response)


def fail(exc: Exception, url: str, errors: Console) -> typer.Exit:
    """Print what went wrong (the gateway's code and message as it sent them) on `errors`;
    the exit to raise (see the module docstring for the codes)."""
    if isinstance(exc, GatewayError):
        status = f" (HTTP {exc.status})" if exc.status else ""
        errors.print(f"[bold red]{exc.code}[/]{status}: ", end="", highlight=False)
        errors.print(str(exc), markup=False, highlight=False, soft_wrap=True)
        return typer.Exit(2 if exc.status in REFUSED else 1)
    message = str(unreachable(url, exc))
    errors.print(message, style="bold red", markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(1)


def text_or_stdin(text: str | None, errors: Console) -> str:
    """The command's TEXT argument, else what is piped on stdin (a terminal there: exit 2)."""
    if text is not None:
        return text
    if sys.stdin.isatty():
        errors.print("give the text as an argument or pipe it on stdin")
        raise typer.Exit(2)
    return sys.stdin.read()
