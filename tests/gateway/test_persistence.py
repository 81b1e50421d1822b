"""Two gateway replicas, one persistence group: every event stored and forwarded once."""

from __future__ import annotations

import httpx
from redis.asyncio import Redis

from tests.gateway import sse
from tests.gateway.conftest import GatewayFactory
from tests.gateway.factories import answered, at, recorded, transcribed
from tests.gateway.test_sse import connections
from tests.integration.bus_helpers import user_events, wait_for
from whisp_gateway.repository import SqlRepository
from whisp_gateway.repository.models import TranscriptQuery
from whisp_shared.bus import EventBus
from whisp_shared.streams import GATEWAY_GROUP, RECORDINGS, RESPONSES, TRANSCRIPTS, USER_EVENTS

RECORDINGS_N = 20
ANSWERS_N = 10
TOTAL = 2 * RECORDINGS_N + ANSWERS_N


def history() -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = []
    for n in range(RECORDINGS_N):
        rid = f"rec{n:02d}"
        out.append((RECORDINGS, recorded(rid, "local", created_at=at(n))))
        out.append((TRANSCRIPTS, transcribed(rid, f"words {n}", "local")))
        if n < ANSWERS_N:
            out.append((RESPONSES, answered(rid, f"answer {n}", "local")))
    return out


async def test_two_replicas_store_and_forward_each_event_once(
    gateway: GatewayFactory, database_url: str, publisher: EventBus, redis: Redis
) -> None:
    events = history()
    with (
        gateway(database_url=database_url, consumer_name="replica-a") as a,
        gateway(database_url=database_url, consumer_name="replica-b") as b,
    ):
        async with (
            httpx.AsyncClient(base_url=a, timeout=10) as client_a,
            httpx.AsyncClient(base_url=b, timeout=10) as client_b,
            sse.events(client_a) as stream_a,
            sse.events(client_b) as stream_b,
        ):
            await connections(a, 1)
            await connections(b, 1)
            for stream, event in events:
                await publisher.publish(stream, event)  # type: ignore[arg-type]
            # A producer retrying a publish (same recording, same event) changes nothing.
            for stream, event in events[:9]:
                await publisher.publish(stream, event)  # type: ignore[arg-type]

            async def all_handled() -> bool:
                lag = 0
                for stream in (RECORDINGS, TRANSCRIPTS, RESPONSES):
                    lag += await publisher.group_lag(stream, GATEWAY_GROUP)
                return lag == 0

            await wait_for(all_handled, timeout=30)
            # Each replica's browser gets every event of its user, once (SSE fan-out is not
            # split by the group: only storage is).
            seen_a = await stream_a.take(TOTAL)
            seen_b = await stream_b.take(TOTAL)
            await stream_a.nothing_more(0.3)
            await stream_b.nothing_more(0.1)

        forwarded = await user_events(redis)
        assert await redis.xlen(USER_EVENTS) == TOTAL
        published_ids = sorted(event.event_id for _, event in events)  # type: ignore[attr-defined]
        assert sorted(e.event_id for e in forwarded) == published_ids
        for seen in (seen_a, seen_b):
            assert sorted(m.payload["event_id"] for m in seen) == published_ids

        # Both replicas took part in the group.
        consumers = await redis.xinfo_consumers(TRANSCRIPTS, GATEWAY_GROUP)
        names = {c["name"].decode() for c in consumers}
        assert {"replica-a", "replica-b"} <= names
        assert all(c["pending"] == 0 for c in consumers)

    repo = SqlRepository(database_url)
    try:
        stored = [t async for t in repo.iterate("local", TranscriptQuery())]
        assert len(stored) == RECORDINGS_N
        assert {t.status for t in stored} == {"done"}
        assert sum(len(t.answers) for t in stored) == ANSWERS_N
        assert all(len(t.answers) <= 1 for t in stored)
    finally:
        await repo.close()
