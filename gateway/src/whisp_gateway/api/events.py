"""`GET /api/events`: the caller's own events as SSE, resumable with `Last-Event-ID`.

Only user-facing events leave here: snapshots of the caller's stored transcripts
(`transcript.updated`, see `whisp_shared.views`), each with its stream id, and live-only
events (`transcript.partial`, `answer.delta`) without one — never the raw bus events with
their audio URIs and service fields.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Header
from fastapi.sse import EventSourceResponse, ServerSentEvent

from whisp_gateway import metrics
from whisp_gateway.api.deps import HubDep
from whisp_gateway.api.responses import SIGNED_IN, errors
from whisp_gateway.auth import CurrentUser
from whisp_gateway.errors import BadLastEventId
from whisp_gateway.hub import EventHub, stream_id_key, valid_stream_id
from whisp_shared.streams import LIVE
from whisp_shared.views import ClientEvent

router = APIRouter(prefix="/api", tags=["events"])


def to_sse(event: ClientEvent, entry_id: str | None) -> ServerSentEvent:
    """`entry_id` None (a live-only event): no `id:` line, so the browser's Last-Event-ID
    still names the last stored snapshot it got."""
    return ServerSentEvent(id=entry_id, event=event.type, raw_data=event.model_dump_json())


def resume_from(
    last_event_id: Annotated[str | None, Header(max_length=64)] = None,
) -> str | None:
    if last_event_id is not None and not valid_stream_id(last_event_id):
        raise BadLastEventId("Last-Event-ID must be a stream id like 1-0")
    return last_event_id


@router.get(
    "/events",
    response_class=EventSourceResponse,
    responses=errors(
        *SIGNED_IN,
        400,
        422,
        streaming=True,
        notes={
            400: "`bad_last_event_id`: Last-Event-ID is not a stream id like 1-0",
            422: "`invalid_request`: Last-Event-ID is longer than 64 characters",
        },
    ),
)
async def events(
    user: CurrentUser,
    hub: HubDep,
    last_event_id: Annotated[str | None, Depends(resume_from)],
) -> AsyncIterator[ServerSentEvent]:
    """Snapshots of the caller's transcripts as they change, with Redis stream ids; live
    partial text and answer deltas, without ids; heartbeats every 15 s."""
    with metrics.SSE_CLIENTS.track_inprogress():
        async for item in _stream(user.id, hub, last_event_id):
            yield item


async def _stream(
    user_id: str, hub: EventHub, last_event_id: str | None
) -> AsyncIterator[ServerSentEvent]:
    async with hub.connect(user_id) as sub:
        if not last_event_id:
            # A fresh connection first names where it starts (an id without data): dropped
            # before its first event, it still resumes from there instead of from nothing.
            yield ServerSentEvent(id=sub.after)
            last = stream_id_key(sub.after)
        else:
            last = stream_id_key(last_event_id)
            async for found, reached in hub.replay(user_id, last_event_id):
                for item in found:
                    yield to_sse(item.event, item.entry_id)
                if not found or found[-1].entry_id != reached:
                    # An id without data moves the client's Last-Event-ID past what was
                    # scanned (EventSource fires no event): a long catch-up keeps its progress.
                    yield ServerSentEvent(id=reached)
                last = stream_id_key(reached)
                if sub.overflowed:
                    return  # live events outran the replay: the client resumes from `reached`
        while (live := await sub.queue.get()) is not None:
            if live.stream == LIVE:  # live-only: no id, never replayed
                yield to_sse(live.event, None)
            elif stream_id_key(live.entry_id) > last:
                yield to_sse(live.event, live.entry_id)  # else already sent during replay
