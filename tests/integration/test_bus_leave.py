"""A stopped consumer leaves its group only when nothing is pending for it (real Redis).

KEDA scales workers in and out; each pod's consumer is a name in the group. One that stopped
cleanly (drained, nothing pending) is deleted from the group (XGROUP DELCONSUMER), so
`XINFO CONSUMERS` lists live workers only. One that stopped while an entry was still pending
for it stays: deleting it would drop the entry from the group's pending list, and with it
the recording; a peer reclaims the entry instead.
"""

from __future__ import annotations

import asyncio
from collections import Counter

from redis.asyncio import Redis

from tests.integration.bus_helpers import (
    Recorder,
    consumer,
    has_outputs,
    outputs,
    pending_count,
    recording,
    wait_for,
)
from whisp_shared.streams import RECORDINGS, TRANSCRIBERS_GROUP


async def consumer_names(redis: Redis) -> dict[str, int]:
    """The group's consumers on the recordings stream → their pending counts."""
    found = await redis.xinfo_consumers(RECORDINGS, TRANSCRIBERS_GROUP)
    return {c["name"].decode(): int(c["pending"]) for c in found}


async def test_a_cleanly_stopped_consumer_leaves_the_group(make_bus, redis: Redis) -> None:
    handler = Recorder()
    bus = make_bus("scaled-in", consumer(handler))
    await bus.start()
    await bus.publish(RECORDINGS, recording("done-before-stop"))
    await wait_for(lambda: has_outputs(redis, 1))
    assert await consumer_names(redis) == {"scaled-in": 0}

    await bus.stop()

    assert await consumer_names(redis) == {}
    assert handler.calls == Counter({"done-before-stop": 1})


async def test_a_consumer_stopped_with_work_in_flight_stays_and_its_entry_is_reclaimed(
    make_bus, redis: Redis
) -> None:
    """The handler outlasts `graceful_timeout_s`: the entry is handed back, still pending for
    the stopped consumer, which therefore stays; a peer then takes the entry and finishes it."""
    slow = Recorder(delay=30)
    stopping = make_bus("stopping", consumer(slow), graceful_timeout_s=0.2)
    await stopping.start()
    await stopping.publish(RECORDINGS, recording("in-flight"))
    await wait_for(lambda: _called(slow, "in-flight"))

    await stopping.stop()

    assert await consumer_names(redis) == {"stopping": 1}
    peer = Recorder()
    await make_bus("peer", consumer(peer)).start()
    await wait_for(lambda: has_outputs(redis, 1))
    assert peer.calls == Counter({"in-flight": 1})
    [out] = await outputs(redis)
    assert out.recording_id == "in-flight"
    assert await pending_count(redis) == 0


async def test_a_consumer_that_left_an_entry_for_a_retry_stays(make_bus, redis: Redis) -> None:
    """A retryable failure leaves the entry pending for this consumer (reclaimed after
    `claim_idle_ms`): stopping then must not delete the consumer and lose the retry."""
    flaky = Recorder(fail_times=1)
    stopping = make_bus("flaky", consumer(flaky), claim_idle_ms=60_000)
    await stopping.start()
    await stopping.publish(RECORDINGS, recording("retry-me"))
    await wait_for(lambda: _pending_for(redis, "flaky", 1))
    await wait_for(lambda: _called(flaky, "retry-me"))

    await stopping.stop()

    assert await consumer_names(redis) == {"flaky": 1}
    claimed = await redis.xautoclaim(
        RECORDINGS, TRANSCRIBERS_GROUP, "peer", min_idle_time=0, start_id="0-0"
    )
    assert [entry_id for entry_id, _fields in claimed[1]], "the entry is still reclaimable"
    assert await consumer_names(redis) == {"flaky": 0, "peer": 1}


async def _called(handler: Recorder, rid: str) -> bool:
    return handler.calls[rid] > 0


async def _pending_for(redis: Redis, name: str, n: int) -> bool:
    return await pending_count(redis, name) == n


async def test_a_peer_removes_gone_consumers_once_nothing_is_pending_for_them(
    make_bus, redis: Redis
) -> None:
    """Pods killed without a clean stop leave names behind: a peer's trimmer removes the ones
    idle past `gone_consumer_idle_s` with nothing pending, never one that still holds an
    entry (its recording would be dropped with it)."""
    await redis.xgroup_create(RECORDINGS, TRANSCRIBERS_GROUP, id="0", mkstream=True)
    await redis.xgroup_createconsumer(RECORDINGS, TRANSCRIBERS_GROUP, "killed-idle")
    await redis.xadd(RECORDINGS, {"data": b"{}"})
    await redis.xreadgroup(TRANSCRIBERS_GROUP, "killed-holding", {RECORDINGS: ">"}, count=1)
    assert await consumer_names(redis) == {"killed-idle": 0, "killed-holding": 1}

    peer = make_bus(
        "peer", consumer(Recorder()), gone_consumer_idle_s=1.5, trim_interval_s=0.1,
        claim_idle_ms=60_000,
    )  # fmt: skip
    await peer.start()
    try:
        await wait_for(lambda: _without(redis, "killed-idle"))
        assert await consumer_names(redis) == {"killed-holding": 1}  # holds its entry: stays
        await peer.publish(RECORDINGS, recording("after"))  # the live reader: idle < 1.5 s
        await wait_for(lambda: has_outputs(redis, 1))
        await asyncio.sleep(0.3)  # a few trim rounds
        assert await consumer_names(redis) == {"killed-holding": 1, "peer": 0}
    finally:
        await peer.stop()


async def _without(redis: Redis, name: str) -> bool:
    return name not in await consumer_names(redis)
