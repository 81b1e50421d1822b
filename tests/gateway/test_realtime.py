"""`/v1/realtime?intent=transcription` on a running gateway, with a real `websockets` client:
the handshake's auth, the session's configuration, and every kind of bad frame — each an
`error` event with a stable code on a socket that keeps working.

The audio service is not running here (its URL points at a closed port): audio that
cannot be stored is an `error` too, never a dropped socket. The whole live path (audio
service, worker, transcript) is tested end to end in tests/e2e/test_realtime.py.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from tests.gateway.conftest import GatewayFactory, add_users
from whisp_cli.redis_server import free_port

CLOSED = f"http://127.0.0.1:{free_port()}"


def ws_url(http_url: str, query: str = "intent=transcription") -> str:
    return http_url.replace("http://", "ws://") + "/v1/realtime?" + query


@asynccontextmanager
async def session(url: str, **kwargs: Any) -> AsyncIterator[ClientConnection]:
    async with connect(ws_url(url), open_timeout=5, **kwargs) as ws:
        created = json.loads(await ws.recv())
        assert created["type"] == "session.created"
        yield ws


async def ask(ws: ClientConnection, event: dict[str, Any] | str) -> dict[str, Any]:
    await ws.send(event if isinstance(event, str) else json.dumps(event))
    reply: dict[str, Any] = json.loads(await ws.recv(decode=True))
    return reply


def pcm(samples: int) -> str:
    return base64.b64encode(b"\x00\x01" * samples).decode()


async def test_a_session_is_created_and_configured(gateway: GatewayFactory) -> None:
    with gateway(audio_service_url=CLOSED) as url:
        async with connect(ws_url(url), subprotocols=["realtime"]) as ws:  # type: ignore[list-item]
            assert ws.subprotocol == "realtime"
            created = json.loads(await ws.recv())
            assert created["type"] == "session.created"
            assert created["session"]["type"] == "transcription"
            assert created["session"]["audio"]["input"]["format"] == {"type": "audio/pcm",
                                                                     "rate": 24000}  # fmt: skip
            updated = await ask(ws, {"type": "session.update", "session": {
                "type": "transcription", "audio": {"input": {
                    "format": {"type": "audio/pcm", "rate": 16000},
                    "transcription": {"model": "gpt-4o-transcribe", "language": "en"},
                    "turn_detection": None}}}})  # fmt: skip
            assert updated["type"] == "session.updated"
            config = updated["session"]["audio"]["input"]
            assert config["format"]["rate"] == 16000
            assert config["transcription"]["language"] == "en"


def update(audio_input: dict[str, Any]) -> dict[str, Any]:
    return {"type": "session.update",
            "session": {"type": "transcription", "audio": {"input": audio_input}}}  # fmt: skip


def append(audio: str) -> dict[str, Any]:
    return {"type": "input_audio_buffer.append", "audio": audio}


BAD_FRAMES: dict[str, tuple[dict[str, Any] | str, str]] = {
    "not-json": ("this is not json", "invalid_json"),
    "unknown-type": ({"type": "response.create"}, "unknown_event"),
    "bad-base64": (append("@@not base64@@"), "invalid_audio"),
    "odd-bytes": (append(base64.b64encode(b"abc").decode()), "invalid_audio"),
    "no-audio": ({"type": "input_audio_buffer.append"}, "invalid_event"),
    "empty-commit": ({"type": "input_audio_buffer.commit"}, "input_audio_buffer_commit_empty"),
    "bad-rate": (update({"format": {"type": "audio/pcm", "rate": 44100}}), "unsupported_format"),
    "vad": (update({"turn_detection": {"type": "server_vad"}}), "unsupported_turn_detection"),
    "wrong-session": ({"type": "session.update", "session": {"type": "realtime"}}, "invalid_event"),
    "too-much-audio": (append(pcm(600_000)), "audio_too_large"),
}


@pytest.mark.parametrize(("frame", "code"), BAD_FRAMES.values(), ids=BAD_FRAMES.keys())
async def test_a_bad_frame_gets_an_error_event_and_the_socket_stays(
    gateway: GatewayFactory, frame: dict[str, Any] | str, code: str
) -> None:
    with gateway(audio_service_url=CLOSED) as url:
        async with session(url, max_size=None) as ws:
            reply = await ask(ws, {"type": "input_audio_buffer.clear", "event_id": "c1"})
            assert reply["type"] == "input_audio_buffer.cleared"
            error = await ask(ws, frame)
            assert error["type"] == "error", error
            assert error["error"]["code"] == code
            assert error["error"]["message"]
            again = await ask(ws, {"type": "input_audio_buffer.clear"})
            assert again["type"] == "input_audio_buffer.cleared"  # still serving


async def test_audio_that_cannot_be_stored_is_an_error_not_a_dropped_socket(
    gateway: GatewayFactory,
) -> None:
    with gateway(audio_service_url=CLOSED) as url:
        async with session(url) as ws:
            error = await ask(ws, {"type": "input_audio_buffer.append", "audio": pcm(2400),
                                   "event_id": "evt-7"})  # fmt: skip
            assert error["type"] == "error"
            assert error["error"]["code"] == "audio_unavailable"
            assert error["error"]["type"] == "server_error"
            assert error["error"]["event_id"] == "evt-7"
            assert (await ask(ws, {"type": "input_audio_buffer.clear"}))["type"] == (
                "input_audio_buffer.cleared"
            )


async def test_only_transcription_sessions_are_served(gateway: GatewayFactory) -> None:
    with gateway(audio_service_url=CLOSED) as url:
        with pytest.raises(InvalidStatus) as refused:
            await connect(ws_url(url, "model=gpt-realtime"))
        assert refused.value.response.status_code == 400
        assert json.loads(refused.value.response.body or b"{}")["code"] == "unsupported_intent"


async def test_a_shared_gateway_wants_a_token_header_or_subprotocol(
    gateway: GatewayFactory, sqlite_url: str
) -> None:
    tokens = await add_users(sqlite_url, "alice")
    with gateway(audio_service_url=CLOSED) as url:
        with pytest.raises(InvalidStatus) as refused:
            await connect(ws_url(url))
        assert refused.value.response.status_code == 401
        assert json.loads(refused.value.response.body or b"{}")["code"] == "unauthorized"
        with pytest.raises(InvalidStatus) as wrong:
            await connect(ws_url(url), additional_headers={"Authorization": "Bearer wsp_nope"})
        assert wrong.value.response.status_code == 401
        headers = {"Authorization": f"Bearer {tokens['alice']}"}
        async with session(url, additional_headers=headers):
            pass
        browser = ["realtime", f"openai-insecure-api-key.{tokens['alice']}"]
        async with session(url, subprotocols=browser) as ws:
            assert ws.subprotocol == "realtime"  # the token is never echoed back


async def test_a_session_cookie_works_only_from_the_gateways_own_origin(
    gateway: GatewayFactory, sqlite_url: str
) -> None:
    tokens = await add_users(sqlite_url, "alice")
    with gateway(audio_service_url=CLOSED) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            login = await client.post("/api/login", json={"token": tokens["alice"]})
            assert login.status_code in (200, 204), login.text
            cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
        own = {"Cookie": cookie, "Origin": url}
        async with session(url, additional_headers=own):
            pass
        foreign = {"Cookie": cookie, "Origin": "http://evil.example"}
        with pytest.raises(InvalidStatus) as refused:
            await connect(ws_url(url), additional_headers=foreign)
        assert refused.value.response.status_code == 403
        assert json.loads(refused.value.response.body or b"{}")["code"] == "forbidden_origin"
