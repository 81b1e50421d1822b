"""Runs over REST and SSE: one agent (or a pipeline) on text, alone or in a session.

Streaming starts the run in a dependency and waits for its first event before the response
begins, so an unknown agent, a guardrail trip or an upstream 429 still gets its real status
code (through the shared error handler); a failure after output has started can only arrive
as an `error` event, carrying the same body plus `retry_after`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel, Field

from whisp_agent.api.deps import CallerDep, RuntimeDep
from whisp_agent.errors import translate
from whisp_agent.runs import RunEvent, RunOutcome, RunRequest
from whisp_shared.http_errors import ERROR_RESPONSES, error_body

runs_router = APIRouter(tags=["agents"], responses=ERROR_RESPONSES)


class RunBody(BaseModel):
    agent: str = Field(min_length=1, max_length=64, description="An agent or pipeline id.")
    input: str = Field(min_length=1)
    session_id: str | None = Field(default=None, min_length=1, max_length=128)


class ChatBody(RunBody):
    session_id: str = Field(min_length=1, max_length=128)


def _request(body: RunBody, caller: CallerDep) -> RunRequest:
    return RunRequest(
        target=body.agent, text=body.input, user_id=caller.user_id, session_id=body.session_id
    )


@runs_router.post("/run")
async def run(body: RunBody, caller: CallerDep, runtime: RuntimeDep) -> RunOutcome:
    """Text in, the final answer out (every stage's output and the usage included)."""
    return await runtime.run(_request(body, caller))


@runs_router.post("/chat")
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
        body = error_body(error.code, error.message, retryable=error.retryable)
        yield ServerSentEvent(event="error", data={**body, "retry_after": error.retry_after})


@runs_router.post("/run/stream", response_class=EventSourceResponse)
async def run_stream(
    started: Annotated[Started, Depends(started_run)],
) -> AsyncIterator[ServerSentEvent]:
    """SSE: `delta` (text as generated), `agent` (a handoff), `tool`, `stage` (pipelines),
    then `done` with the same body /run returns, or `error` with a code."""
    async for event in _events(started):
        yield event


@runs_router.post("/chat/stream", response_class=EventSourceResponse)
async def chat_stream(
    started: Annotated[Started, Depends(started_chat)],
) -> AsyncIterator[ServerSentEvent]:
    async for event in _events(started):
        yield event
