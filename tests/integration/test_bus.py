"""The bus against a real redis-server: groups, reclaim, dead-letter, idempotency."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter

from redis.asyncio import Redis

from tests.integration.bus_helpers import (
    Recorder,
    consumer,
    consumer_process,
    has_outputs,
    outputs,
    pending_count,
    pending_is,
    recording,
    stream_len,
    wait_for,
)
from whisp_shared.config import BusSettings
from whisp_shared.errors import PermanentError
from whisp_shared.events import TranscriptionFailed, TranscriptReady
from whisp_shared.streams import RECORDINGS, TRANSCRIBERS_GROUP, dead_letter_stream


async def test_event_is_consumed_published_and_acked(make_bus, redis: Redis) -> None:
    handler = Recorder()
    bus = make_bus("w1", consumer(handler))
    await bus.start()
    await bus.publish(RECORDINGS, recording("r1"))

    await wait_for(lambda: has_outputs(redis, 1))
    [out] = await outputs(redis)
    assert isinstance(out, TranscriptReady)
    assert out.recording_id == "r1"
    assert out.text == "text of r1"
    assert await pending_count(redis) == 0


async def test_entries_published_before_any_worker_started_are_delivered(
    make_bus, redis: Redis
) -> None:
    publisher = make_bus("publisher")
    await publisher.start()
    await publisher.publish(RECORDINGS, recording("early"))
    worker = make_bus("late-worker", consumer(Recorder()))
    await worker.start()
    await wait_for(lambda: has_outputs(redis, 1))


async def test_two_workers_share_work_without_duplicates(make_bus, redis: Redis) -> None:
    first, second = Recorder(delay=0.01), Recorder(delay=0.01)
    bus_a = make_bus("a", consumer(first))
    bus_b = make_bus("b", consumer(second))
    await bus_a.start()
    await bus_b.start()
    ids = [f"r{i}" for i in range(40)]
    for rid in ids:
        await bus_a.publish(RECORDINGS, recording(rid))

    await wait_for(lambda: has_outputs(redis, 40))
    await asyncio.sleep(0.3)
    assert sorted(e.recording_id for e in await outputs(redis)) == sorted(ids)
    assert first.calls + second.calls == Counter(dict.fromkeys(ids, 1))
    assert first.calls and second.calls, "both workers should have taken some entries"


async def test_sigkilled_consumer_entry_is_reclaimed_and_processed_once(
    make_bus, redis: Redis, bus_settings: BusSettings
) -> None:
    doomed = consumer_process(bus_settings.redis_url, bus_settings.claim_idle_ms)
    try:
        publisher = make_bus("publisher")
        await publisher.start()
        await publisher.publish(RECORDINGS, recording("victim"))
        await wait_for(lambda: stream_len(redis, "test:started", 1), timeout=20)
        # The doomed worker holds the entry, heartbeating, past several idle periods.
        await asyncio.sleep(bus_settings.claim_idle_ms / 1000 * 2)
        survivor = Recorder()
        bus = make_bus("survivor", consumer(survivor))
        await bus.start()
        await asyncio.sleep(bus_settings.claim_idle_ms / 1000 * 2)
        assert survivor.calls["victim"] == 0, "a live worker's entry must not be stolen"
        assert await outputs(redis) == []

        doomed.send_signal(signal.SIGKILL)
        doomed.wait(timeout=5)
        await wait_for(lambda: has_outputs(redis, 1), timeout=10)
    finally:
        doomed.kill()
        doomed.wait()

    await asyncio.sleep(bus_settings.claim_idle_ms / 1000 * 2)
    [out] = await outputs(redis)
    assert isinstance(out, TranscriptReady)
    assert out.recording_id == "victim"
    assert survivor.calls["victim"] == 1
    assert await pending_count(redis) == 0


async def test_failing_entry_is_retried_then_dead_lettered_with_its_error(
    make_bus, redis: Redis, bus_settings: BusSettings
) -> None:
    handler = Recorder(fail_times=99, error=RuntimeError("engine exploded on this clip"))
    bus = make_bus("w1", consumer(handler))
    await bus.start()
    await bus.publish(RECORDINGS, recording("poison", user_id="bob"))

    await wait_for(lambda: has_outputs(redis, 1), timeout=15)
    assert handler.calls["poison"] == bus_settings.max_deliveries
    [failure] = await outputs(redis)
    assert isinstance(failure, TranscriptionFailed)
    assert failure.user_id == "bob"
    assert failure.code == "internal_error"
    assert "engine exploded on this clip" in failure.message

    [(_id, fields)] = await redis.xrange(dead_letter_stream(RECORDINGS))
    assert b"engine exploded on this clip" in fields[b"error"]
    assert fields[b"group"] == TRANSCRIBERS_GROUP.encode()
    assert int(fields[b"deliveries"]) == bus_settings.max_deliveries
    assert await pending_count(redis) == 0


async def test_transient_failure_then_success_publishes_once(make_bus, redis: Redis) -> None:
    handler = Recorder(fail_times=1)
    bus = make_bus("w1", consumer(handler))
    await bus.start()
    await bus.publish(RECORDINGS, recording("flaky"))

    await wait_for(lambda: has_outputs(redis, 1), timeout=10)
    [out] = await outputs(redis)
    assert isinstance(out, TranscriptReady)
    assert handler.calls["flaky"] == 2
    assert await redis.xlen(dead_letter_stream(RECORDINGS)) == 0


async def test_permanent_error_fails_at_once_without_retry(make_bus, redis: Redis) -> None:
    handler = Recorder(fail_times=99, error=PermanentError("not audio", code="undecodable_audio"))
    bus = make_bus("w1", consumer(handler))
    await bus.start()
    await bus.publish(RECORDINGS, recording("garbage"))

    await wait_for(lambda: has_outputs(redis, 1))
    [failure] = await outputs(redis)
    assert isinstance(failure, TranscriptionFailed)
    assert (failure.code, failure.message, failure.retryable) == (
        "undecodable_audio",
        "not audio",
        False,
    )
    assert handler.calls["garbage"] == 1


async def test_same_recording_twice_yields_one_output(make_bus, redis: Redis) -> None:
    handler = Recorder()
    bus = make_bus("w1", consumer(handler))
    await bus.start()
    await bus.publish(RECORDINGS, recording("dup"))
    await wait_for(lambda: has_outputs(redis, 1))
    await bus.publish(RECORDINGS, recording("dup"))
    await wait_for(lambda: pending_is(redis, 0))
    await asyncio.sleep(0.2)

    assert len(await outputs(redis)) == 1
    assert handler.calls["dup"] == 1


async def test_undecodable_entry_goes_to_dead_letter_and_is_acked(make_bus, redis: Redis) -> None:
    bus = make_bus("w1", consumer(Recorder()))
    await bus.start()
    await redis.xadd(RECORDINGS, {"data": b'{"type": "recording.completed", "user_id": 5}'})

    await wait_for(lambda: stream_len(redis, dead_letter_stream(RECORDINGS), 1))
    [(_id, fields)] = await redis.xrange(dead_letter_stream(RECORDINGS))
    assert b"recording_id" in fields[b"error"]
    await wait_for(lambda: pending_is(redis, 0))
    assert await outputs(redis) == []


async def test_entries_the_consumer_does_not_accept_are_acked_untouched(
    make_bus, redis: Redis
) -> None:
    handler = Recorder()
    bus = make_bus("w1", consumer(handler, accepts=lambda e: e.user_id != "skip-me"))
    await bus.start()
    await bus.publish(RECORDINGS, recording("ignored", user_id="skip-me"))
    await bus.publish(RECORDINGS, recording("taken"))

    await wait_for(lambda: has_outputs(redis, 1))
    await wait_for(lambda: pending_is(redis, 0))
    assert [e.recording_id for e in await outputs(redis)] == ["taken"]
    assert "ignored" not in handler.calls


async def test_stop_lets_in_flight_work_finish(make_bus, redis: Redis) -> None:
    handler = Recorder(delay=0.5)
    bus = make_bus("w1", consumer(handler))
    await bus.start()
    await bus.publish(RECORDINGS, recording("slow"))
    await wait_for(lambda: _called(handler, "slow"))
    await bus.stop()

    [out] = await outputs(redis)
    assert out.recording_id == "slow"
    assert await pending_count(redis) == 0


async def test_a_held_bus_takes_no_work_and_still_publishes(make_bus, redis: Redis) -> None:
    held, peer = Recorder(), Recorder()
    held_bus = make_bus("held", consumer(held))
    held_bus.hold()
    await held_bus.start()
    await held_bus.publish(RECORDINGS, recording("for-the-peer"))
    await asyncio.sleep(0.3)
    assert await pending_count(redis) == 0  # nobody took it yet
    await make_bus("peer", consumer(peer)).start()

    await wait_for(lambda: has_outputs(redis, 1))
    assert held.calls == Counter()
    assert peer.calls == Counter({"for-the-peer": 1})


async def _called(handler: Recorder, rid: str) -> bool:
    return handler.calls[rid] > 0
