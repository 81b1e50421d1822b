"""REST and SSE routes: list agents, run one (or a pipeline), chat in a session, stream.

Errors are `AgentError`s turned into JSON `{code, message, retryable}` with their HTTP status
(and `Retry-After` for 429/503) by the handler `install_error_handler` registers.

Streaming starts the run in a dependency and waits for its first event before the response
begins, so an unknown agent, a guardrail trip or an upstream 429 still gets its real status
code; a failure after output has started arrives as an `error` event.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel, Field

from whisp_agent.dependencies import CallerDep, RuntimeDep, SettingsDep, StoreDep
from whisp_agent.errors import AgentError, translate
from whisp_agent.runtime import RunEvent, RunOutcome, RunRequest
from whisp_agent.sessions import Turn
from whisp_agent.store import Note, UsageTotal

router = APIRouter()


class AgentInfo(BaseModel):
    id: str
    name: str
    description: str
    provider: str
    model: str
    verbosity: str
    tools: list[str]
    delegate_to: list[str]
    memory: bool
    available: bool
    problem: str | None = None


class PipelineInfo(BaseModel):
    id: str
    name: str
    description: str
    stages: list[str]


class Catalog(BaseModel):
    agents: list[AgentInfo]
    pipelines: list[PipelineInfo]


class RunBody(BaseModel):
    agent: str = Field(min_length=1, max_length=64, description="An agent or pipeline id.")
    input: str = Field(min_length=1)
    session_id: str | None = Field(default=None, min_length=1, max_length=128)


class ChatBody(RunBody):
    session_id: str = Field(min_length=1, max_length=128)


class ErrorBody(BaseModel):
    code: str
    message: str
    retryable: bool = False


class History(BaseModel):
    session_id: str
    turns: list[Turn]


ERRORS: dict[int | str, dict[str, object]] = {
    s: {"model": ErrorBody} for s in (401, 404, 413, 422, 429, 502, 503)
}


@router.get("/agents", tags=["agents"])
async def list_agents(runtime: RuntimeDep) -> Catalog:
    registry, factory = runtime.registry, runtime.factory
    agents = []
    for spec in registry.agents.values():
        where = factory.resolve(spec)
        problem = runtime.unavailable(spec.id)
        agents.append(
            AgentInfo(
                id=spec.id, name=spec.display_name, description=spec.description,
                provider=where.provider, model=where.model, verbosity=spec.verbosity,
                tools=spec.tools, delegate_to=spec.delegate_to, memory=spec.memory,
                available=problem is None, problem=problem,
            )
        )  # fmt: skip
    pipelines = [
        PipelineInfo(
            id=p.id,
            name=p.name or p.id,
            description=p.description,
            stages=[s.name or s.agent for s in p.stages],
        )
        for p in registry.pipelines.values()
    ]
    return Catalog(agents=agents, pipelines=pipelines)


def _request(body: RunBody, caller: CallerDep) -> RunRequest:
    return RunRequest(
        target=body.agent, text=body.input, user_id=caller.user_id, session_id=body.session_id
    )


@router.post("/run", tags=["agents"], responses=ERRORS)
async def run(body: RunBody, caller: CallerDep, runtime: RuntimeDep) -> RunOutcome:
    """Text in, the final answer out (every stage's output and the usage included)."""
    return await runtime.run(_request(body, caller))


@router.post("/chat", tags=["agents"], responses=ERRORS)
async def chat(body: ChatBody, caller: CallerDep, runtime: RuntimeDep) -> RunOutcome:
    """Like /run, in a session: the agent remembers earlier turns of the same session id."""
    return await runtime.run(_request(body, caller))


@dataclass
class Started:
    """A run whose first event has arrived (so it did not fail before answering)."""

    first: list[RunEvent]
    rest: AsyncIterator[RunEvent]


async def _start(request: RunRequest, runtime: RuntimeDep) -> Started:
    """Pull events until the model has produced something (text, a tool call, the end):
    bookkeeping events (`agent`, `stage`) arrive before any model call could fail."""
    stream = runtime.stream(request)
    first: list[RunEvent] = []
    async for event in stream:
        first.append(event)
        if event.type in ("delta", "tool", "done"):
            break
    return Started(first, stream)


async def started_run(body: RunBody, caller: CallerDep, runtime: RuntimeDep) -> Started:
    return await _start(_request(body, caller), runtime)


async def started_chat(body: ChatBody, caller: CallerDep, runtime: RuntimeDep) -> Started:
    return await _start(_request(body, caller), runtime)


def _sse(event: RunEvent) -> ServerSentEvent:
    return ServerSentEvent(event=event.type, data=event.model_dump(exclude_none=True))


async def _events(started: Started) -> AsyncIterator[ServerSentEvent]:
    for event in started.first:
        yield _sse(event)
    try:
        async for event in started.rest:
            yield _sse(event)
    except Exception as exc:
        error = translate(exc)
        data = {**error.body(), "retry_after": error.retry_after}
        yield ServerSentEvent(event="error", data=data)


@router.post("/run/stream", tags=["agents"], response_class=EventSourceResponse, responses=ERRORS)
async def run_stream(
    started: Annotated[Started, Depends(started_run)],
) -> AsyncIterator[ServerSentEvent]:
    """SSE: `delta` (text as generated), `agent` (a handoff), `tool`, `stage` (pipelines),
    then `done` with the same body /run returns, or `error` with a code."""
    async for event in _events(started):
        yield event


@router.post("/chat/stream", tags=["agents"], response_class=EventSourceResponse, responses=ERRORS)
async def chat_stream(
    started: Annotated[Started, Depends(started_chat)],
) -> AsyncIterator[ServerSentEvent]:
    async for event in _events(started):
        yield event


@router.get("/sessions/{session_id}", tags=["sessions"])
async def session_history(session_id: str, caller: CallerDep, runtime: RuntimeDep) -> History:
    """The caller's own session, each answer attributed to the agent (and stage) that gave it."""
    turns = await runtime.sessions.history(caller.user_id, session_id)
    return History(session_id=session_id, turns=turns)


@router.get("/usage", tags=["usage"])
async def usage(
    caller: CallerDep,
    store: StoreDep,
    by: Annotated[Literal["agent", "session", "user"], Query()] = "agent",
    all_users: bool = False,
) -> list[UsageTotal]:
    """Tokens, requests, runs and estimated cost; a user sees their own, a service all."""
    user = None if (all_users and caller.service) else caller.user_id
    return await store.usage_totals(by, user_id=user)


@router.get("/notes", tags=["tools"])
async def notes(caller: CallerDep, store: StoreDep, settings: SettingsDep) -> list[Note]:
    """What the note tool saved for the caller."""
    return await store.notes(caller.user_id)


def install_error_handler(app: FastAPI) -> None:
    async def handle(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, AgentError)
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers())

    app.add_exception_handler(AgentError, handle)
