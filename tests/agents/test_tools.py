"""Tools alone: a calculator that cannot be abused, the clock, and transcript search through
a real HTTP server standing in for the gateway (identity forwarded, never chosen by the model).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from pydantic import SecretStr

from whisp_agent.tools import ToolDeps, ToolFailure, builtin_tools
from whisp_agent.tools.calculator import CalculatorArgs, calculate, evaluate
from whisp_agent.tools.clock import ClockArgs, current_time
from whisp_agent.tools.transcripts import GatewayTranscripts, SearchArgs, search_transcripts

TRANSCRIPTS = {
    "alice": ["Buy milk and call the dentist", "The dentist moved to Friday"],
    "bob": ["Dentist bills are secret"],
}


@pytest.mark.parametrize(
    ("expression", "value"),
    [("1 + 2 * 3", 7), ("(12.5 + 7) * 4", 78.0), ("2 ** 10", 1024), ("-3 // 2", -2),
     ("7 % 3", 1), ("2^3", 8), ("1/4", 0.25)],
)  # fmt: skip
def test_calculator_arithmetic(expression: str, value: float) -> None:
    assert evaluate(expression) == value


@pytest.mark.parametrize(
    "expression",
    ["__import__('os').system('true')", "open('/etc/passwd')", "x + 1", "(1).__class__",
     "[1, 2]", "9 ** 9 ** 9", "10 ** 1000 * 10 ** 1000", "1 / 0", "'a' * 3", "lambda: 1",
     "1 if 1 else 2", "x" * 300],
)  # fmt: skip
def test_calculator_refuses_anything_but_arithmetic(expression: str) -> None:
    with pytest.raises(ToolFailure):
        evaluate(expression)


async def test_calculator_tool_formats_integers() -> None:
    assert await calculate(ToolDeps("u"), CalculatorArgs(expression="6*7.0")) == "6*7.0 = 42"


async def test_clock_in_a_zone_and_a_bad_zone() -> None:
    text = await current_time(ToolDeps("u"), ClockArgs(timezone="Europe/Berlin"))
    assert "Europe/Berlin" in text and "ISO 20" in text
    with pytest.raises(ToolFailure, match="unknown time zone"):
        await current_time(ToolDeps("u"), ClockArgs(timezone="Mars/Olympus"))


def test_registry_rejects_duplicate_names() -> None:
    tools = builtin_tools()
    assert tools.names() == ["calculator", "current_time", "search_transcripts", "write_note"]
    with pytest.raises(ValueError, match="registered twice"):
        tools.register(tools.get("calculator"))


class GatewayStub:
    """`GET /api/transcripts?q=&limit=` scoped by X-Whisp-User, behind a service token."""

    def __init__(self, token: str) -> None:
        self.requests: list[dict[str, Any]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                pass

            def do_GET(self) -> None:
                url = urlparse(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                stub.requests.append({"path": url.path, "query": query,
                                      "headers": dict(self.headers)})  # fmt: skip
                if self.headers.get("Authorization") != f"Bearer {token}":
                    return self._json(401, {"code": "unauthorized"})
                user = self.headers.get("X-Whisp-User", "")
                words = query.get("q", "").lower()
                hits = [
                    {"text": t, "recording_id": f"r{i}", "created_at": "2026-11-01T10:00:00Z"}
                    for i, t in enumerate(TRANSCRIPTS.get(user, []))
                    if words in t.lower()
                ]
                return self._json(200, {"items": hits[: int(query.get("limit", 5))],
                                        "next": None})  # fmt: skip

            def _json(self, status: int, body: object) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def gateway() -> Iterator[GatewayStub]:
    stub = GatewayStub("svc-token")
    yield stub
    stub.server.shutdown()
    stub.server.server_close()


async def test_search_forwards_identity_and_sees_only_the_callers_transcripts(
    gateway: GatewayStub,
) -> None:
    async with httpx.AsyncClient() as http:
        search = GatewayTranscripts(gateway.url, SecretStr("svc-token"), http, 2.0)
        text = await search_transcripts(
            ToolDeps("alice", transcripts=search), SearchArgs(query="dentist", limit=5)
        )
        assert "2 of your transcripts" in text and "Friday" in text and "secret" not in text
        sent = gateway.requests[-1]
        assert sent["path"] == "/api/transcripts"
        assert sent["query"] == {"q": "dentist", "limit": "5"}
        assert sent["headers"]["X-Whisp-User"] == "alice"
        assert sent["headers"]["Authorization"] == "Bearer svc-token"
        bob = await search_transcripts(ToolDeps("bob", transcripts=search),
                                       SearchArgs(query="milk"))  # fmt: skip
        assert bob == "No transcripts of yours mention 'milk'."


async def test_search_failures_are_told_to_the_model_not_raised(gateway: GatewayStub) -> None:
    async with httpx.AsyncClient() as http:
        wrong_token = GatewayTranscripts(gateway.url, SecretStr("nope"), http, 2.0)
        with pytest.raises(ToolFailure, match="HTTP 401"):
            await wrong_token.search("alice", "x", 5)
        down = GatewayTranscripts("http://127.0.0.1:9", None, http, 0.5)
        with pytest.raises(ToolFailure, match="unreachable"):
            await down.search("alice", "x", 5)


def test_search_args_are_not_where_the_user_comes_from() -> None:
    """The model can only send query and limit: no field could name another user."""
    assert set(SearchArgs.model_json_schema()["properties"]) == {"query", "limit"}
