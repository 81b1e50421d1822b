"""Agents through the gateway: list them, run one on text (whole or streamed), chat.

The agent service does the work; the gateway authenticates, rate-limits and passes
the caller's identity on, so sessions, notes and usage stay per user.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Path
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from whisp_gateway.api.deps import AgentsDep, LimitedUser
from whisp_gateway.api.responses import AGENT, AGENT_RUN, errors
from whisp_gateway.auth import CurrentUser
from whisp_shared.options import NAME_PATTERN

router = APIRouter(prefix="/api/agents", tags=["agents"], responses=errors(*AGENT))

RUN_REFUSALS = errors(
    *AGENT_RUN,
    notes={
        400: "`bad_request`: the body cannot be parsed at all (not UTF-8)",
        404: "`unknown_agent`: no agent or pipeline with this id",
        413: "`input_too_long`: more text than the agent service accepts",
        422: "`invalid_request` (a bad or missing field), `bad_input`, "
        "`guardrail_tripped` or `agent_config_error`",
        503: "`agent_unavailable` (the agent service) or `upstream_unavailable` (its model "
        "provider); retry, honour `Retry-After`",
    },
)
STREAM = {
    "description": "SSE: `agent`, `stage` and `tool` as the run moves, `delta` while the model "
    "writes, then `done` with the same body `/run` returns, or `error` with an error body",
    "content": {
        "text/event-stream": {
            "itemSchema": {
                "type": "object",
                "properties": {
                    "event": {"type": "string"},
                    "data": {"type": "string", "contentMediaType": "application/json"},
                    "id": {"type": "string"},
                    "retry": {"type": "integer", "minimum": 0},
                },
            }
        }
    },
}


class AgentChoice(BaseModel):
    """An agent or pipeline the caller may pick: what the page's menu and `whisp agents
    list` show."""

    id: str
    name: str
    description: str = ""
    kind: Literal["agent", "pipeline"]
    available: bool = True
    problem: str | None = None
    provider: str | None = None
    model: str | None = None
    tools: list[str] = Field(default_factory=list)
    delegate_to: list[str] = Field(default_factory=list)
    """Agents this one may hand off to."""
    stages: list[str] = Field(default_factory=list)
    """A pipeline's agents, in order."""


SessionId = Annotated[str, Field(min_length=1, max_length=128, pattern=NAME_PATTERN)]
"""A session name as an upload names it (`RecordingOptions.session_id`): no `/`, no `..`."""


class RunBody(BaseModel):
    agent: str = Field(min_length=1, max_length=64)
    input: str = Field(min_length=1, max_length=20_000)
    session_id: SessionId | None = None


class ChatBody(RunBody):
    session_id: SessionId
    """The conversation: turns of the same id (the caller's own) are remembered."""


@router.get("")
async def list_agents(user: CurrentUser, agents: AgentsDep) -> list[AgentChoice]:
    catalog = (await agents.request("GET", "/agents", user.id)).json()
    return [
        *(AgentChoice(kind="agent", **_pick(a)) for a in catalog.get("agents", [])),
        *(AgentChoice(kind="pipeline", **_pick(p)) for p in catalog.get("pipelines", [])),
    ]


def _pick(item: dict[str, Any]) -> dict[str, Any]:
    keys = set(AgentChoice.model_fields) - {"kind"}
    return {k: item[k] for k in keys if k in item}


@router.post("/run", responses=RUN_REFUSALS)
async def run(body: RunBody, user: LimitedUser, agents: AgentsDep) -> Any:
    """Text in, the final answer and token usage out."""
    return (await agents.request("POST", "/run", user.id, json=body.model_dump())).json()


@router.post("/chat", responses=RUN_REFUSALS)
async def chat(body: ChatBody, user: LimitedUser, agents: AgentsDep) -> Any:
    """Like `run`, in a session that remembers earlier turns (`session_id` required)."""
    return (await agents.request("POST", "/chat", user.id, json=body.model_dump())).json()


@router.post(
    "/run/stream", response_class=StreamingResponse, responses={200: STREAM, **RUN_REFUSALS}
)
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


@router.get("/sessions/{session_id}", responses=errors(422))
async def session_history(
    session_id: Annotated[str, Path(max_length=128, pattern=NAME_PATTERN)],
    user: CurrentUser,
    agents: AgentsDep,
) -> Any:
    path = f"/sessions/{quote(session_id, safe='')}"
    return (await agents.request("GET", path, user.id)).json()


@router.get("/usage", responses=errors(422))
async def usage(
    user: CurrentUser, agents: AgentsDep, by: Literal["agent", "session"] = "agent"
) -> Any:
    """The caller's own token usage (never other users')."""
    return (await agents.request("GET", "/usage", user.id, params={"by": by})).json()
