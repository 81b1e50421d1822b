"""Agents through the gateway: list them, run one on text (whole or streamed), chat.

The agent service does the work; the gateway authenticates, rate-limits and passes
the caller's identity on, so sessions, notes and usage stay per user.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Literal
from urllib.parse import quote

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from whisp_gateway.api.deps import AgentsDep, LimitedUser
from whisp_gateway.auth import CurrentUser

router = APIRouter(prefix="/api/agents", tags=["agents"])


class AgentChoice(BaseModel):
    id: str
    name: str
    description: str = ""
    kind: Literal["agent", "pipeline"]
    available: bool = True
    problem: str | None = None


class RunBody(BaseModel):
    agent: str = Field(min_length=1, max_length=64)
    input: str = Field(min_length=1, max_length=20_000)
    session_id: str | None = Field(default=None, min_length=1, max_length=128)


@router.get("")
async def list_agents(user: CurrentUser, agents: AgentsDep) -> list[AgentChoice]:
    catalog = (await agents.request("GET", "/agents", user.id)).json()
    return [
        *(AgentChoice(kind="agent", **_pick(a)) for a in catalog.get("agents", [])),
        *(AgentChoice(kind="pipeline", **_pick(p)) for p in catalog.get("pipelines", [])),
    ]


def _pick(item: dict[str, Any]) -> dict[str, Any]:
    keys = ("id", "name", "description", "available", "problem")
    return {k: item[k] for k in keys if k in item}


@router.post("/run")
async def run(body: RunBody, user: LimitedUser, agents: AgentsDep) -> Any:
    """Text in, the final answer and token usage out."""
    return (await agents.request("POST", "/run", user.id, json=body.model_dump())).json()


@router.post("/chat")
async def chat(body: RunBody, user: LimitedUser, agents: AgentsDep) -> Any:
    """Like `run`, in a session that remembers earlier turns (session_id required)."""
    return (await agents.request("POST", "/chat", user.id, json=body.model_dump())).json()


@router.post("/run/stream", response_class=StreamingResponse)
async def run_stream(body: RunBody, user: LimitedUser, agents: AgentsDep) -> StreamingResponse:
    """The answer as SSE deltas while the model writes it."""
    path = "/chat/stream" if body.session_id else "/run/stream"
    upstream = await agents.open_stream("POST", path, user.id, json=body.model_dump())

    async def relay() -> AsyncIterator[bytes]:
        try:
            async for chunk in upstream.aiter_raw():
                yield chunk
        finally:
            await upstream.aclose()

    return StreamingResponse(
        relay(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
    )


@router.get("/sessions/{session_id}")
async def session_history(session_id: str, user: CurrentUser, agents: AgentsDep) -> Any:
    path = f"/sessions/{quote(session_id, safe='')}"
    return (await agents.request("GET", path, user.id)).json()


@router.get("/usage")
async def usage(
    user: CurrentUser, agents: AgentsDep, by: Literal["agent", "session"] = "agent"
) -> Any:
    """The caller's own token usage (never other users')."""
    return (await agents.request("GET", "/usage", user.id, params={"by": by})).json()
