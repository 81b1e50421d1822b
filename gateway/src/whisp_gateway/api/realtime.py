"""`/v1/realtime?intent=transcription`: OpenAI's Realtime transcription over a WebSocket.

Who may connect is decided before the handshake completes, as for every other route: an
`Authorization: Bearer` header (programs), the token as the `openai-insecure-api-key.<token>`
subprotocol (browsers cannot set headers on a WebSocket; OpenAI's own convention), or the
session cookie — then only from this gateway's own origin, so another site cannot open a
socket with a visitor's cookie. A refusal is an HTTP answer with the usual error body.

Past the handshake nothing a client sends closes the socket: a bad frame (not JSON, an
unknown type, bad base64, a wrong format, too much audio) gets an `error` event with a
stable code, and the session goes on.
"""

from __future__ import annotations

import asyncio
from contextlib import suppress
from functools import partial
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, WebSocket
from fastapi.responses import JSONResponse
from starlette.websockets import WebSocketDisconnect

from whisp_gateway import metrics
from whisp_gateway.api.deps import rate_limited
from whisp_gateway.auth import COOKIE, authenticate
from whisp_gateway.clients import AudioService
from whisp_gateway.hub import EventHub
from whisp_gateway.quota import Quota
from whisp_gateway.realtime import protocol
from whisp_gateway.realtime.protocol import ProtocolError, parse_client_event
from whisp_gateway.realtime.session import RealtimeSession
from whisp_gateway.repository.models import User
from whisp_gateway.user_options import options_for
from whisp_shared.codes import ErrorCode
from whisp_shared.errors import WhispError
from whisp_shared.logs import get_logger
from whisp_shared.options import AgentRoute

log = get_logger(__name__)
router = APIRouter(prefix="/v1", tags=["realtime"])

TOKEN_PROTOCOL = "openai-insecure-api-key."  # noqa: S105 (a prefix, not a secret)
REALTIME_PROTOCOL = "realtime"


def _offered(websocket: WebSocket) -> list[str]:
    header = websocket.headers.get("sec-websocket-protocol", "")
    return [p.strip() for p in header.split(",") if p.strip()]


def _token(websocket: WebSocket) -> str | None:
    auth = websocket.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip() or None
    for proto in _offered(websocket):
        if proto.startswith(TOKEN_PROTOCOL):
            return proto[len(TOKEN_PROTOCOL) :] or None
    return None


def _same_origin(websocket: WebSocket) -> bool:
    origin = websocket.headers.get("origin")
    if origin is None:
        return True  # not a browser: no ambient cookie to abuse
    return urlsplit(origin).netloc == websocket.headers.get("host", "")


async def _refuse(websocket: WebSocket, error: WhispError) -> None:
    body = {"code": error.code, "message": error.message, "retryable": error.retryable}
    await websocket.send_denial_response(JSONResponse(body, status_code=error.status))


async def _caller(websocket: WebSocket) -> User:
    token = _token(websocket)
    if token is None and websocket.cookies.get(COOKIE) and not _same_origin(websocket):
        raise WhispError(
            "a browser session may open a socket only from this gateway's own pages",
            code=ErrorCode.FORBIDDEN_ORIGIN,
            status=403,
        )
    return await authenticate(websocket, token)


@router.websocket("/realtime")
async def realtime(
    websocket: WebSocket,
    intent: str | None = None,
    agent_id: str | None = None,
    pipeline: str | None = None,
) -> None:
    """Push-to-talk transcription: append audio while the key is held, commit on release;
    deltas while it is held, the final transcript after. `agent_id`/`pipeline` (ours) send
    each transcript on to an agent, as for uploads."""
    try:
        if intent != "transcription":
            raise WhispError(
                "only transcription sessions are served here (?intent=transcription)",
                code=ErrorCode.UNSUPPORTED_INTENT,
                status=400,
            )
        user = await _caller(websocket)
        route = AgentRoute(agent_id=agent_id, pipeline=pipeline)
    except WhispError as exc:
        await _refuse(websocket, exc)
        return
    subprotocol = REALTIME_PROTOCOL if REALTIME_PROTOCOL in _offered(websocket) else None
    await websocket.accept(subprotocol=subprotocol)
    with metrics.REALTIME_SESSIONS.track_inprogress():
        await _serve(websocket, user, route)


async def _serve(websocket: WebSocket, user: User, route: AgentRoute) -> None:
    app = websocket.app
    lock = asyncio.Lock()

    async def send(event: dict[str, Any]) -> None:
        async with lock:
            await websocket.send_json(event)

    quota: Quota = app.state.quota

    async def before_item() -> None:
        state = app.state
        await rate_limited(user, state.limiter, state.settings, state.repo)
        await quota.check(user)

    audio: AudioService = app.state.audio
    hub: EventHub = app.state.hub
    resolve = partial(options_for, app.state.repo, user.id)
    session = RealtimeSession(
        user.id,
        audio,
        send,
        route=route,
        before_item=before_item,
        count=partial(quota.add, user.id),
        resolve=resolve,
    )
    async with hub.connect(user.id) as connection:
        relay = asyncio.create_task(session.relay(connection))
        try:
            await send(protocol.server_event("session.created", session=session.session_body()))
            await _receive(websocket, session, send)
        except WebSocketDisconnect:
            pass
        finally:
            relay.cancel()
            with suppress(asyncio.CancelledError):
                await relay
            with suppress(WhispError):
                await session.close()


async def _receive(websocket: WebSocket, session: RealtimeSession, send: Any) -> None:
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        raw = message.get("text") or message.get("bytes") or b""
        event_id: str | None = None
        try:
            event = parse_client_event(raw)
            event_id = event.event_id
            await session.handle(event)
        except ProtocolError as exc:
            metrics.REALTIME_ERRORS.labels(exc.code).inc()
            await send(protocol.error_event(exc.code, exc.message, exc.param, event_id))
        except WhispError as exc:
            metrics.REALTIME_ERRORS.labels(str(exc.code)).inc()
            kind = "server_error" if exc.status >= 500 else "invalid_request_error"
            await send(protocol.error_event(str(exc.code), exc.message, None, event_id, kind))
