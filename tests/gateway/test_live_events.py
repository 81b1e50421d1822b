"""Live-only events (partial text, answer deltas) on a real gateway over real SSE: only their
owner gets them, in order, without an SSE id; resume and replay never see them."""

from __future__ import annotations

import asyncio

import httpx
from redis.asyncio import Redis

from tests.gateway import sse
from tests.gateway.conftest import GatewayFactory, add_users, signed_in
from tests.gateway.factories import transcribed, updated
from tests.gateway.test_sse import connections
from tests.integration.bus_helpers import wait_for
from whisp_gateway.hub import EventHub
from whisp_shared.bus import EventBus
from whisp_shared.codec import encode_entry
from whisp_shared.streams import LIVE, TRANSCRIPTS, USER_EVENTS
from whisp_shared.views import AnswerDelta, TranscriptPartial


def partial(rid: str, user: str, seq: int, text: str) -> TranscriptPartial:
    return TranscriptPartial(
        recording_id=rid, user_id=user, text=text, stable_chars=len(text) // 2, sequence=seq
    )


def delta(rid: str, user: str, seq: int, piece: str) -> AnswerDelta:
    return AnswerDelta(recording_id=rid, user_id=user, agent_id="summarizer", delta=piece,
                       run_id="run-1", sequence=seq)  # fmt: skip


async def test_live_events_reach_only_their_owner_in_order_without_ids(
    gateway: GatewayFactory, sqlite_url: str, publisher: EventBus
) -> None:
    tokens = await add_users(sqlite_url, "alice", "bob")
    with gateway() as url:
        async with signed_in(url, tokens, "alice", "bob") as (a, b):
            alice, alice_id, bob, bob_id = a.client, a.id, b.client, b.id
            words = ["buy", "milk", "and", "eggs", "and", "bread"]
            async with sse.events(alice) as alice_stream, sse.events(bob) as bob_stream:
                await connections(url, 2)
                for seq in range(len(words)):
                    await publisher.publish_live(
                        partial("a1", alice_id, seq, " ".join(words[: seq + 1]))
                    )
                    if seq < 2:
                        await publisher.publish_live(partial("b1", bob_id, seq, f"bob {seq}"))
                for seq, piece in enumerate(["Milk", ", eggs", ", bread."]):
                    await publisher.publish_live(delta("a1", alice_id, seq, piece))
                mine = await alice_stream.take(len(words) + 3)
                theirs = await bob_stream.take(2)
                await alice_stream.nothing_more(0.3)
                await bob_stream.nothing_more(0.3)

    assert [m.event for m in mine] == ["transcript.partial"] * len(words) + ["answer.delta"] * 3
    assert [m.payload["sequence"] for m in mine] == [*range(len(words)), 0, 1, 2]
    assert mine[len(words) - 1].payload["text"] == " ".join(words)
    assert "".join(m.payload["delta"] for m in mine[len(words) :]) == "Milk, eggs, bread."
    assert {m.payload["user_id"] for m in mine} == {alice_id}
    assert [(m.payload["recording_id"], m.payload["text"]) for m in theirs] == [
        ("b1", "bob 0"),
        ("b1", "bob 1"),
    ]
    assert all(m.id is None for m in [*mine, *theirs])
    # The only ids are where each fresh connection started: live events never move them.
    assert len(alice_stream.ids) == 1 and len(bob_stream.ids) == 1


async def test_live_events_never_move_resume_and_are_never_replayed(
    gateway: GatewayFactory, publisher: EventBus, redis: Redis
) -> None:
    async def forwarded(n: int) -> None:
        async def enough() -> bool:
            return await redis.xlen(USER_EVENTS) >= n

        await wait_for(enough)

    with gateway() as url:  # loopback, no users: the single "local" user
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            async with sse.events(client) as stream:
                await connections(url, 1)
                await publisher.publish(TRANSCRIPTS, transcribed("r1", "first", "local"))
                stored = await stream.next()
                for seq, text in enumerate(["second", "second try"]):
                    await publisher.publish_live(partial("r2", "local", seq, text))
                live = await stream.take(2)
                assert stream.last_id == stored.id  # the partials left it where it was
            await connections(url, 0)

            # While away: the final transcript is stored, and one more partial passes by.
            await publisher.publish_live(partial("r2", "local", 2, "second try again"))
            await publisher.publish(TRANSCRIPTS, transcribed("r2", "second try again", "local"))
            await forwarded(2)
            async with sse.events(client, last_event_id=stream.last_id) as resumed:
                [missed] = await resumed.take(1)
                await resumed.nothing_more(0.5)

    assert stored.event == "transcript.updated" and stored.id is not None
    assert [(m.event, m.id, m.payload["sequence"]) for m in live] == [
        ("transcript.partial", None, 0),
        ("transcript.partial", None, 1),
    ]
    assert missed.event == "transcript.updated"
    assert missed.payload["transcript"]["text"] == "second try again"
    assert missed.id is not None and missed.id != stored.id
    assert await redis.xlen(LIVE) == 3  # published, but never sent again


async def test_hub_sends_live_events_to_connections_only(publisher: EventBus, redis: Redis) -> None:
    """`?wait=true` waits on a plain subscription: it must see snapshots only; and a type on
    the wrong stream (a publisher's bug) reaches nobody."""
    hub = EventHub(redis, block_ms=100)
    await hub.start()
    try:
        async with hub.subscribe("carol") as waiter, hub.connect("carol") as conn:
            await publisher.publish_live(partial("c1", "carol", 0, "hel"))
            await redis.xadd(USER_EVENTS, encode_entry(partial("c1", "carol", 1, "hello")))  # type: ignore[arg-type]
            await publisher.publish(USER_EVENTS, updated(transcribed("c1", "hello", "carol")))
            first = await asyncio.wait_for(conn.queue.get(), 5)
            second = await asyncio.wait_for(conn.queue.get(), 5)
            only = await asyncio.wait_for(waiter.queue.get(), 5)
            await asyncio.sleep(0.3)
            assert conn.queue.empty() and waiter.queue.empty()
    finally:
        await hub.stop()

    assert first is not None and first.stream == LIVE
    assert first.event.type == "transcript.partial"
    assert second is not None and second.event.type == "transcript.updated"
    assert only is not None and only.event.type == "transcript.updated"
