"""Every service answers a bad request and an unknown route with the one error body.

Each app is built by its own `create_app()` and called in-process (ASGI): what matters
here is the body and status the shared handlers render, not the transport.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from whisp_shared.bus import EventBus
from whisp_shared.codes import ErrorCode
from whisp_shared.config import BusSettings
from whisp_shared.http_errors import install_error_handlers

BODY_KEYS = {"code", "message", "retryable"}


@dataclass(frozen=True)
class Case:
    method: str
    path: str
    kwargs: dict[str, Any]
    status: int
    code: ErrorCode


def gateway_app(tmp_path: Path, bus: EventBus) -> FastAPI:
    from whisp_gateway.app import create_app
    from whisp_gateway.settings import GatewaySettings

    return create_app(GatewaySettings(database_url=f"sqlite:///{tmp_path}/g.db"), bus)


def audio_app(tmp_path: Path, bus: EventBus) -> FastAPI:
    from whisp_audio.app import create_app
    from whisp_audio.settings import AudioSettings

    return create_app(AudioSettings(data_dir=tmp_path / "audio"), bus)


def agent_app(tmp_path: Path, bus: EventBus) -> FastAPI:
    from whisp_agent.app import create_app
    from whisp_agent.settings import AgentSettings

    return create_app(AgentSettings(data_dir=tmp_path / "agents"), bus)


def transcription_app(_tmp_path: Path, bus: EventBus) -> FastAPI:
    from whisp_transcription.app import create_app

    return create_app(bus=bus)


SERVICES: dict[str, tuple[Callable[[Path, EventBus], FastAPI], Case]] = {
    "gateway": (
        gateway_app,
        Case("POST", "/api/login", {"json": {"token": 12}}, 422, ErrorCode.INVALID_REQUEST),
    ),
    "audio": (
        audio_app,
        Case("POST", "/recordings", {"data": {"language": "en"}}, 422, ErrorCode.INVALID_REQUEST),
    ),
    "agents": (
        agent_app,
        Case("POST", "/run", {"content": b"{not json"}, 422, ErrorCode.INVALID_REQUEST),
    ),
    "transcription": (
        transcription_app,
        Case("POST", "/healthz", {}, 405, ErrorCode.METHOD_NOT_ALLOWED),
    ),
}


def assert_error_body(response: httpx.Response, status: int, code: ErrorCode) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == BODY_KEYS, body
    assert body["code"] == code
    assert isinstance(body["message"], str) and body["message"]
    assert isinstance(body["retryable"], bool)


@pytest.mark.parametrize("service", sorted(SERVICES))
async def test_bad_request_and_unknown_route_share_one_body(
    service: str, tmp_path: Path, bus_settings: BusSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("mode: local\n")
    monkeypatch.setenv("WHISP_CONFIG", str(config))
    build, bad = SERVICES[service]
    app = build(tmp_path, EventBus(bus_settings))
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://svc") as client,
    ):
        response = await client.request(bad.method, bad.path, **bad.kwargs)
        assert_error_body(response, bad.status, bad.code)
        unknown = await client.get("/no/such/route")
        assert_error_body(unknown, 404, ErrorCode.NOT_FOUND)


async def test_openai_routes_answer_in_openai_shape(
    tmp_path: Path, bus_settings: BusSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("mode: local\n")
    monkeypatch.setenv("WHISP_CONFIG", str(config))
    app = gateway_app(tmp_path, EventBus(bus_settings))
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://gw") as client,
    ):
        response = await client.post("/v1/audio/transcriptions", data={"model": "whisper-1"})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == ErrorCode.INVALID_REQUEST
    assert error["type"] == "invalid_request_error" and "file" in error["message"]


@pytest.mark.parametrize("error", [RedisConnectionError("refused"), RedisTimeoutError("slow")])
async def test_an_unreachable_redis_is_a_503_with_retry_after(error: Exception) -> None:
    """Not a plain-text 500: the client learns the code and when to try again."""
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/needs-redis")
    async def needs_redis() -> None:
        raise error

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
        response = await client.get("/needs-redis")
    assert_error_body(response, 503, ErrorCode.UNAVAILABLE)
    assert response.json()["retryable"] is True
    assert int(response.headers["Retry-After"]) >= 1
