"""The bus against a real redis-server: groups, reclaim, dead-letter, idempotency."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from redis.asyncio import Redis

from tests.integration.bus_helpers import (
    failure_for,
    recording,
    stream_events,
    transcript_for,
    wait_for,
)
from whisp_shared.bus import Consumer, EventBus
from whisp_shared.config import BusSettings
from whisp_shared.errors import PermanentError
from whisp_shared.events import Event, EventBase, TranscriptionFailed, TranscriptReady
from whisp_shared.streams import RECORDINGS, TRANSCRIBERS_GROUP, TRANSCRIPTS, dead_letter_stream

ROOT = Path(__file__).resolve().parents[2]
Handler = Callable[[Event], "asyncio.Future[EventBase | None] | object"]


class Recorder:
    """A handler that counts calls per recording and can be told to fail."""

    def __init__(self, fail_times: int = 0, error: Exception | None = None, delay: float = 0):
        self.calls: Counter[str] = Counter()
        self.fail_times = fail_times
        self.error = error or RuntimeError("engine exploded")
        self.delay = delay

    async def __call__(self, event: Event) -> EventBase | None:
        self.calls[event.recording_id] += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.calls[event.recording_id] <= self.fail_times:
            raise self.error
        return transcript_for(event, text=f"text of {event.recording_id}")


def consumer(handler: Recorder, **kwargs: object) -> Consumer:
    return Consumer(
        RECORDINGS,
        TRANSCRIBERS_GROUP,
        TRANSCRIPTS,
        handler,
        failure_for,
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.fixture
async def make_bus(bus_settings: BusSettings) -> AsyncIterator[Callable[..., EventBus]]:
    started: list[EventBus] = []

    def make(name: str, *consumers: Consumer) -> EventBus:
        bus = EventBus(bus_settings, consumer_name=name)
        for c in consumers:
            bus.consume(c)
        started.append(bus)
        return bus

    yield make
    for bus in started:
        if bus._redis is not None:
            await bus.stop()


async def outputs(redis: Redis) -> list[Event]:
    return await stream_events(redis, TRANSCRIPTS)


async def pending_count(redis: Redis) -> int:
    info = await redis.xpending(RECORDINGS, TRANSCRIBERS_GROUP)
    return int(info["pending"])


async def test_event_is_consumed_published_and_acked(make_bus, redis: Redis) -> None:
    handler = Recorder()
    bus = make_bus("w1", consumer(handler))
    await bus.start()
    await bus.publish(RECORDINGS, recording("r1"))

    await wait_for(lambda: _has_outputs(redis, 1))
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
    await wait_for(lambda: _has_outputs(redis, 1))


async def test_two_workers_share_work_without_duplicates(make_bus, redis: Redis) -> None:
    first, second = Recorder(delay=0.01), Recorder(delay=0.01)
    bus_a = make_bus("a", consumer(first))
    bus_b = make_bus("b", consumer(second))
    await bus_a.start()
    await bus_b.start()
    ids = [f"r{i}" for i in range(40)]
    for rid in ids:
        await bus_a.publish(RECORDINGS, recording(rid))

    await wait_for(lambda: _has_outputs(redis, 40))
    await asyncio.sleep(0.3)
    assert sorted(e.recording_id for e in await outputs(redis)) == sorted(ids)
    assert first.calls + second.calls == Counter(dict.fromkeys(ids, 1))
    assert first.calls and second.calls, "both workers should have taken some entries"


async def test_sigkilled_consumer_entry_is_reclaimed_and_processed_once(
    make_bus, redis: Redis, bus_settings: BusSettings
) -> None:
    doomed = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "tests/integration/consumer_proc.py"),
            bus_settings.redis_url,
            str(bus_settings.claim_idle_ms),
        ],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        publisher = make_bus("publisher")
        await publisher.start()
        await publisher.publish(RECORDINGS, recording("victim"))
        await wait_for(lambda: _stream_len(redis, "test:started", 1), timeout=20)
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
        await wait_for(lambda: _has_outputs(redis, 1), timeout=10)
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

    await wait_for(lambda: _has_outputs(redis, 1), timeout=15)
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

    await wait_for(lambda: _has_outputs(redis, 1), timeout=10)
    [out] = await outputs(redis)
    assert isinstance(out, TranscriptReady)
    assert handler.calls["flaky"] == 2
    assert await redis.xlen(dead_letter_stream(RECORDINGS)) == 0


async def test_permanent_error_fails_at_once_without_retry(make_bus, redis: Redis) -> None:
    handler = Recorder(fail_times=99, error=PermanentError("not audio", code="undecodable_audio"))
    bus = make_bus("w1", consumer(handler))
    await bus.start()
    await bus.publish(RECORDINGS, recording("garbage"))

    await wait_for(lambda: _has_outputs(redis, 1))
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
    await wait_for(lambda: _has_outputs(redis, 1))
    await bus.publish(RECORDINGS, recording("dup"))
    await wait_for(lambda: _pending_is(redis, 0))
    await asyncio.sleep(0.2)

    assert len(await outputs(redis)) == 1
    assert handler.calls["dup"] == 1


async def test_undecodable_entry_goes_to_dead_letter_and_is_acked(make_bus, redis: Redis) -> None:
    bus = make_bus("w1", consumer(Recorder()))
    await bus.start()
    await redis.xadd(RECORDINGS, {"data": b'{"type": "recording.completed", "user_id": 5}'})

    await wait_for(lambda: _stream_len(redis, dead_letter_stream(RECORDINGS), 1))
    [(_id, fields)] = await redis.xrange(dead_letter_stream(RECORDINGS))
    assert b"recording_id" in fields[b"error"]
    await wait_for(lambda: _pending_is(redis, 0))
    assert await outputs(redis) == []


async def test_entries_the_consumer_does_not_accept_are_acked_untouched(
    make_bus, redis: Redis
) -> None:
    handler = Recorder()
    bus = make_bus("w1", consumer(handler, accepts=lambda e: e.user_id != "skip-me"))
    await bus.start()
    await bus.publish(RECORDINGS, recording("ignored", user_id="skip-me"))
    await bus.publish(RECORDINGS, recording("taken"))

    await wait_for(lambda: _has_outputs(redis, 1))
    await wait_for(lambda: _pending_is(redis, 0))
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


async def _has_outputs(redis: Redis, n: int) -> bool:
    return await redis.xlen(TRANSCRIPTS) >= n


async def _stream_len(redis: Redis, stream: str, n: int) -> bool:
    return await redis.xlen(stream) >= n


async def _pending_is(redis: Redis, n: int) -> bool:
    return await pending_count(redis) == n


async def _called(handler: Recorder, rid: str) -> bool:
    return handler.calls[rid] > 0
