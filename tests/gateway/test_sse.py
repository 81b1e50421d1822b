"""`GET /api/events`: live, resumable with Last-Event-ID, with heartbeats."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, cast

import fastapi.routing
import fastapi.sse
import httpx
import pytest
from redis.asyncio import Redis

from tests.gateway import sse
from tests.gateway.conftest import GatewayFactory, Served
from tests.gateway.factories import transcribed, updated
from tests.integration.bus_helpers import wait_for
from whisp_shared.bus import EventBus
from whisp_shared.codec import encode_entry
from whisp_shared.streams import TRANSCRIPTS, USER_EVENTS


async def publish(bus: EventBus, redis: Redis, *items: tuple[str, str], expect: int) -> None:
    """Transcripts (recording_id, user) through persistence; waits until all are forwarded."""
    for rid, user in items:
        await bus.publish(TRANSCRIPTS, transcribed(rid, f"text of {rid}", user))

    async def forwarded() -> bool:
        return await redis.xlen(USER_EVENTS) >= expect

    await wait_for(forwarded)


def rids(messages: list[sse.Message]) -> list[str]:
    return [m.payload["recording_id"] for m in messages]


async def connections(url: Served, expected: int) -> None:
    async def settled() -> bool:
        try:  # the hub lives in the server's thread: its dict may change while we count
            return url.app.state.hub.connections == expected  # type: ignore[no-any-return]
        except RuntimeError:
            return False

    await wait_for(settled, timeout=15)


async def test_resume_after_disconnect_gets_exactly_the_missed_events(
    gateway: GatewayFactory, publisher: EventBus, redis: Redis
) -> None:
    with gateway() as url:  # loopback, no users: the single "local" user
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            async with sse.events(client) as stream:
                await connections(url, 1)
                await publish(
                    publisher, redis,
                    ("r1", "local"), ("x1", "someone"), ("r2", "local"), ("r3", "local"),
                    ("r4", "local"), ("x2", "someone"), ("r5", "local"),
                    expect=7,
                )  # fmt: skip
                first = await stream.take(2)
                # Leave mid-stream: r3..r5 are on the wire or queued, but never read.
            assert rids(first) == ["r1", "r2"]
            assert all(m.event == "transcript.updated" for m in first)
            assert all(m.payload["transcript"]["status"] == "done" for m in first)
            await connections(url, 0)  # the hub forgets a closed connection

            await publish(
                publisher, redis, ("r6", "local"), ("x3", "someone"), ("r7", "local"), expect=10
            )
            async with sse.events(client, last_event_id=first[-1].id) as stream:
                missed = await stream.take(5)
                assert rids(missed) == ["r3", "r4", "r5", "r6", "r7"]
                await stream.nothing_more(0.5)
                # Live again after the replay, with nothing sent twice.
                await publish(publisher, redis, ("r8", "local"), expect=11)
                live = await stream.next()
                assert live.payload["recording_id"] == "r8"
                await stream.nothing_more(0.3)

    ids = [m.id for m in [*first, *missed, live]]
    entries = [
        e.decode() for e, _ in cast(list[tuple[bytes, Any]], await redis.xrange(USER_EVENTS))
    ]
    mine = [entries[i] for i in (0, 2, 3, 4, 6, 7, 9, 10)]
    assert ids == mine  # SSE ids are the user-events stream ids, in order


async def test_reconnect_while_events_keep_coming(
    gateway: GatewayFactory, publisher: EventBus, redis: Redis
) -> None:
    """Events published during the replay are neither lost nor sent twice."""
    total = 60
    with gateway() as url:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:

            async def keep_publishing() -> None:
                for n in range(total):
                    await publisher.publish(TRANSCRIPTS, transcribed(f"r{n:03d}", "text", "local"))
                    await asyncio.sleep(0.01)

            got: list[sse.Message] = []
            async with sse.events(client) as stream:
                await connections(url, 1)
                producer = asyncio.create_task(keep_publishing())
                got += await stream.take(10)
            for _ in range(3):  # drop and resume a few times mid-flow
                async with sse.events(client, last_event_id=got[-1].id) as stream:
                    got += await stream.take(7)
            async with sse.events(client, last_event_id=got[-1].id) as stream:
                got += await stream.take(total - len(got))
                await producer
                await stream.nothing_more(0.5)
    assert rids(got) == [f"r{n:03d}" for n in range(total)]
    assert len({m.id for m in got}) == total


async def test_heartbeats(gateway: GatewayFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    # fastapi.routing imports the constant by name; patching fastapi.sse alone does nothing.
    monkeypatch.setattr(fastapi.routing, "_PING_INTERVAL", 0.1)
    monkeypatch.setattr(fastapi.sse, "_PING_INTERVAL", 0.1)
    with gateway() as url:
        async with (
            httpx.AsyncClient(base_url=url, timeout=10) as client,
            sse.events(client) as stream,
        ):

            async def pinged() -> bool:
                return stream.pings >= 3

            await wait_for(pinged, timeout=10)  # 0.3 s when the machine is not busy
            await stream.nothing_more(0.1)  # pings are comments, never events


BAD_IDS = ["abc", "1-x", "-1", "5-", "1--1", "+5-0", "1_000-0", "1-0-0", "1-0 x", "1" * 21]


async def test_bad_last_event_id_is_a_400(gateway: GatewayFactory) -> None:
    with gateway() as url:
        async with httpx.AsyncClient(base_url=url, timeout=5) as client:
            for bad in [*BAD_IDS, "99999999999999999999999-0", "18446744073709551616-0"]:
                response = await client.get("/api/events", headers={"Last-Event-ID": bad})
                assert response.status_code == 400, bad
                assert response.headers["content-type"] == "application/json"
                assert response.json()["code"] == "bad_last_event_id"
            # Absurdly long ones never reach the parser.
            response = await client.get("/api/events", headers={"Last-Event-ID": "1" * 100})
            assert response.status_code == 422
            assert response.json()["code"] == "invalid_request"


@pytest.mark.parametrize("good", ["0", "0-0", "1700000000000-5", "18446744073709551615-0"])
async def test_any_real_stream_id_resumes(
    gateway: GatewayFactory, publisher: EventBus, redis: Redis, good: str
) -> None:
    with gateway() as url:
        await publish(publisher, redis, ("r1", "local"), expect=1)
        async with (
            httpx.AsyncClient(base_url=url, timeout=10) as client,
            sse.events(client, last_event_id=good) as stream,
        ):
            if good.startswith("1844"):
                await stream.nothing_more(0.3)  # after the end of time: nothing to replay
            else:
                assert rids([await stream.next()]) == ["r1"]


async def test_a_client_that_cannot_keep_up_is_dropped_and_resumes(
    gateway: GatewayFactory, publisher: EventBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader that stalls is cut off (bounded memory) and loses nothing by resuming."""
    from whisp_gateway import hub

    monkeypatch.setattr(hub, "QUEUE_SIZE", 8)
    total = 300
    bulky = "word " * 13_000  # ~64 KB per event: ~19 MB, more than socket buffers hold
    with gateway() as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            async with client.stream("GET", "/api/events") as response:
                await connections(url, 1)
                for n in range(total):  # straight onto the live stream, as persistence would
                    event = transcribed(f"r{n:03d}", bulky, "local", segments=[])
                    await publisher.publish(USER_EVENTS, updated(event))
                await connections(url, 0)  # dropped while we were not reading
                stream = sse.Stream(response)
                first: list[sse.Message] = []
                with contextlib.suppress(EOFError):
                    while True:
                        first.append(await stream.next())
            # Some or none got through before the drop: either way the id it holds resumes.
            assert len(first) < total and stream.last_id is not None
            async with sse.events(client, last_event_id=stream.last_id) as resumed:
                rest = await resumed.take(total - len(first), timeout=20)
                await resumed.nothing_more(0.3)
    assert rids([*first, *rest]) == [f"r{n:03d}" for n in range(total)]


async def test_dropped_before_its_first_event_a_fresh_connection_still_resumes(
    gateway: GatewayFactory, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A burst bigger than the queue in one read drops a brand-new connection before it
    has sent a single event: the id it was given on connecting is where it resumes."""
    from whisp_gateway import hub

    monkeypatch.setattr(hub, "QUEUE_SIZE", 4)
    with gateway() as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            async with client.stream("GET", "/api/events") as response:
                await connections(url, 1)
                stream = sse.Stream(response)

                async def started() -> bool:
                    return stream.last_id is not None

                await wait_for(started)
                start = stream.last_id
                # MULTI/EXEC: blocked readers wake after EXEC, so the hub reads all 12 at once.
                async with redis.pipeline(transaction=True) as pipe:
                    for n in range(12):
                        burst = updated(transcribed(f"b{n:02d}", "burst", "local", segments=[]))
                        pipe.xadd(USER_EVENTS, cast(Any, encode_entry(burst)))
                    await pipe.execute()
                with pytest.raises(EOFError):
                    await stream.next()  # dropped, nothing sent
            assert stream.last_id == start
            async with sse.events(client, last_event_id=start) as resumed:
                rest = await resumed.take(12, timeout=20)
                await resumed.nothing_more(0.3)
    assert rids(rest) == [f"b{n:02d}" for n in range(12)]


async def test_resume_across_a_long_gap_of_other_users_events(
    gateway: GatewayFactory, publisher: EventBus, redis: Redis
) -> None:
    """While this tab was away, thousands of other users' events went by: the replay
    still finds every one of this user's (however much it has to skip), and tells the
    client how far it has read even where nothing was theirs."""
    with gateway() as url:
        async with (
            httpx.AsyncClient(base_url=url, timeout=10) as client,
            sse.events(client) as watcher,  # another tab of the same user, never away
        ):
            async with sse.events(client) as stream:
                await connections(url, 2)
                await publisher.publish(
                    USER_EVENTS, updated(transcribed("mine-0", "before", "local"))
                )
                seen = await stream.next()
            other = encode_entry(
                updated(transcribed("theirs", "not yours", "someone", segments=[]))
            )
            for chunk in range(12):  # 12,000 entries of someone else's, two of mine between
                async with redis.pipeline(transaction=False) as pipe:
                    for _ in range(1000):
                        pipe.xadd(USER_EVENTS, cast(Any, other))
                    await pipe.execute()
                if chunk in (5, 10):
                    mine = transcribed(f"mine-{chunk}", "while away", "local")
                    await publisher.publish(USER_EVENTS, updated(mine))
            # Once the live path has gone past them, only the replay can deliver them.
            assert rids(await watcher.take(3, timeout=20)) == ["mine-0", "mine-5", "mine-10"]
            async with sse.events(client, last_event_id=seen.id) as resumed:
                missed = await resumed.take(2, timeout=20)
                await resumed.nothing_more(0.3)
                # The replay also moved the resume point past the 1,000 entries after mine-10.
                newest = cast(list[tuple[bytes, Any]], await redis.xrevrange(USER_EVENTS, count=1))
                assert resumed.last_id == newest[0][0].decode()
    assert rids(missed) == ["mine-5", "mine-10"]
