"""The bus's batches against a real redis-server: what a process holds is heartbeated, a
killed or stopping process's batch is finished once by a peer, races publish once."""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter

from prometheus_client import REGISTRY
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
    transcript_for,
    wait_for,
)
from whisp_shared.bus_read import READ_LUA, unpack_entries
from whisp_shared.codec import encode_entry
from whisp_shared.config import BusSettings
from whisp_shared.events import Event, EventBase, TranscriptReady
from whisp_shared.streams import RECORDINGS, TRANSCRIBERS_GROUP, dead_letter_stream


async def publish_backlog(redis: Redis, ids: list[str]) -> None:
    """Entries waiting before any consumer reads, so the first read takes them as one batch."""
    pipe = redis.pipeline(transaction=False)
    for rid in ids:
        pipe.xadd(RECORDINGS, encode_entry(recording(rid)))  # type: ignore[arg-type]
    await pipe.execute()


async def test_sigkilled_consumer_holding_a_full_batch_is_finished_once_by_a_peer(
    make_bus, redis: Redis, bus_settings: BusSettings
) -> None:
    batch = 8
    ids = [f"held-{i}" for i in range(batch)]
    await redis.xgroup_create(RECORDINGS, TRANSCRIBERS_GROUP, id="0", mkstream=True)
    await publish_backlog(redis, ids)
    doomed = consumer_process(bus_settings.redis_url, bus_settings.claim_idle_ms, "hang", batch)
    try:
        await wait_for(lambda: stream_len(redis, "test:started", 1), timeout=20)
        assert await pending_count(redis, "doomed") == batch  # one running, seven waiting
        survivor = Recorder()
        await make_bus("survivor", consumer(survivor, read_count=batch)).start()
        # Several idle periods: the waiting seven are heartbeated with the running one.
        await asyncio.sleep(bus_settings.claim_idle_ms / 1000 * 3)
        assert survivor.calls == Counter(), "a live process's batch must not be stolen"
        assert await pending_count(redis, "doomed") == batch

        doomed.send_signal(signal.SIGKILL)
        doomed.wait(timeout=5)
        await wait_for(lambda: has_outputs(redis, batch), timeout=15)
    finally:
        doomed.kill()
        doomed.wait()

    await asyncio.sleep(bus_settings.claim_idle_ms / 1000 * 2)  # time for any duplicate
    assert sorted(e.recording_id for e in await outputs(redis)) == sorted(ids)
    assert survivor.calls == Counter(dict.fromkeys(ids, 1))
    assert await pending_count(redis) == 0


async def test_entries_waiting_in_a_batch_are_heartbeated_not_stolen(
    make_bus, redis: Redis, bus_settings: BusSettings
) -> None:
    """One worker works through six entries for 1.5 s (0.25 s each), far past `claim_idle_ms`
    (0.4 s): the peer's XAUTOCLAIM never takes the ones still waiting."""
    ids = [f"slow-{i}" for i in range(6)]
    await redis.xgroup_create(RECORDINGS, TRANSCRIBERS_GROUP, id="0", mkstream=True)
    await publish_backlog(redis, ids)
    holder, peer = Recorder(delay=0.25), Recorder()
    await make_bus("holder", consumer(holder, read_count=6)).start()
    await wait_for(lambda: _called(holder, "slow-0"))
    await make_bus("peer", consumer(peer)).start()
    assert await pending_count(redis, "holder") == 6

    await wait_for(lambda: has_outputs(redis, 6), timeout=10)
    await asyncio.sleep(bus_settings.claim_idle_ms / 1000 * 2)
    assert holder.calls == Counter(dict.fromkeys(ids, 1))
    assert peer.calls == Counter()
    assert [e.recording_id for e in await outputs(redis)] == ids  # in order, once each
    assert await pending_count(redis) == 0


async def test_graceful_stop_hands_unstarted_entries_to_a_peer_at_once(
    make_bus, redis: Redis
) -> None:
    """Stop with one entry in flight and four waiting: the one finishes here, the four are
    finished by the peer well before `claim_idle_ms` (10 s), on their first delivery (with
    `max_deliveries=1`, a count the hand-back had not restored would dead-letter them)."""
    settings = {"claim_idle_ms": 10_000, "max_deliveries": 1}
    ids = [f"stop-{i}" for i in range(5)]
    await redis.xgroup_create(RECORDINGS, TRANSCRIBERS_GROUP, id="0", mkstream=True)
    await publish_backlog(redis, ids)
    stopping, peer = Recorder(delay=0.5), Recorder()
    stopping_bus = make_bus("stopping", consumer(stopping, read_count=5), **settings)
    await stopping_bus.start()
    await wait_for(lambda: _called(stopping, "stop-0"))
    await make_bus("peer", consumer(peer), **settings).start()

    started = time.monotonic()
    await stopping_bus.stop()
    await wait_for(lambda: has_outputs(redis, 5), timeout=5)
    assert time.monotonic() - started < 5, "handed back, not left to go idle"

    assert stopping.calls == Counter({"stop-0": 1})
    assert peer.calls == Counter(dict.fromkeys(ids[1:], 1))
    got = await outputs(redis)
    assert sorted(e.recording_id for e in got) == ids
    assert all(isinstance(e, TranscriptReady) for e in got)
    assert await redis.xlen(dead_letter_stream(RECORDINGS)) == 0
    assert await pending_count(redis) == 0


async def test_a_duplicate_in_a_batched_finish_is_acked_without_a_second_output(
    make_bus, redis: Redis
) -> None:
    """A racing delivery sets `raced`'s done-marker while this batch works on it: the batch's
    one finish publishes the other two and only acks `raced`."""
    ids = ["first", "raced", "last"]
    await redis.xgroup_create(RECORDINGS, TRANSCRIBERS_GROUP, id="0", mkstream=True)
    await publish_backlog(redis, ids)
    calls: Counter[str] = Counter()

    async def handler(event: Event) -> EventBase:
        calls[event.recording_id] += 1
        if event.recording_id == "raced":  # the peer's finish lands first
            await redis.set(transcribers.done_key("raced"), "elsewhere")
        return transcript_for(event)

    transcribers = consumer(handler)

    def duplicates() -> float:
        labels = {"stream": RECORDINGS, "group": TRANSCRIBERS_GROUP, "outcome": "duplicate"}
        return REGISTRY.get_sample_value("whisp_bus_entries_total", labels) or 0.0

    before = duplicates()
    await make_bus("w1", transcribers).start()
    await wait_for(lambda: has_outputs(redis, 2))
    await wait_for(lambda: pending_is(redis, 0))

    assert calls == Counter(dict.fromkeys(ids, 1))
    assert [e.recording_id for e in await outputs(redis)] == ["first", "last"]
    assert await redis.get(transcribers.done_key("raced")) == b"elsewhere"
    assert duplicates() == before + 1


async def test_racing_reclaimers_publish_one_output(
    make_bus, redis: Redis, bus_settings: BusSettings
) -> None:
    """A worker whose loop stalls (no heartbeat) past `claim_idle_ms` loses its entry to a
    peer; both run the handler, the first finish publishes and the other only acks."""
    doomed = consumer_process(bus_settings.redis_url, bus_settings.claim_idle_ms, "stall", 1, 3)
    try:
        publisher = make_bus("publisher")
        await publisher.start()
        await publisher.publish(RECORDINGS, recording("contested"))
        await wait_for(lambda: stream_len(redis, "test:started", 1), timeout=20)
        peer = Recorder()
        await make_bus("peer", consumer(peer)).start()
        await wait_for(lambda: has_outputs(redis, 1), timeout=10)
        assert peer.calls == Counter({"contested": 1})  # reclaimed while the other stalled
        await wait_for(lambda: stream_len(redis, "test:returned", 1), timeout=10)
        await asyncio.sleep(0.5)  # its finish follows at once: SET NX fails, it only acks
    finally:
        doomed.kill()
        doomed.wait()

    [out] = await outputs(redis)
    assert isinstance(out, TranscriptReady)
    assert out.text == "text of contested"  # the peer's: it finished first
    assert await redis.xlen(dead_letter_stream(RECORDINGS)) == 0


async def test_read_count_bounds_what_a_process_holds(make_bus, redis: Redis) -> None:
    """Slow work with `read_count=max_workers` takes one entry per free worker: the rest
    stays in the stream, visible as lag to peers and autoscalers."""
    await redis.xgroup_create(RECORDINGS, TRANSCRIBERS_GROUP, id="0", mkstream=True)
    await publish_backlog(redis, [f"lag-{i}" for i in range(6)])
    handler = Recorder(delay=0.3)
    bus = make_bus("w1", consumer(handler, max_workers=2, read_count=2))
    await bus.start()
    await wait_for(lambda: _called(handler, "lag-1"))
    assert await pending_count(redis, "w1") == 2
    assert await bus.group_lag(RECORDINGS, TRANSCRIBERS_GROUP) == 6  # 2 pending + 4 waiting
    await wait_for(lambda: has_outputs(redis, 6), timeout=10)


async def test_a_backlog_is_worked_through_in_batches_once_each_in_order(
    make_bus, redis: Redis
) -> None:
    """25 waiting entries, 5 at a time: the first batch from XREADGROUP, the rest (a
    backlog) from read.lua; one undecodable entry among them is dead-lettered."""
    ids = [f"backlog-{i:02d}" for i in range(25)]
    await redis.xgroup_create(RECORDINGS, TRANSCRIBERS_GROUP, id="0", mkstream=True)
    await publish_backlog(redis, ids[:12])
    await redis.xadd(RECORDINGS, {"data": b"not json"})
    await publish_backlog(redis, ids[12:])
    handler = Recorder()
    await make_bus("w1", consumer(handler, read_count=5)).start()

    await wait_for(lambda: has_outputs(redis, 25))
    await wait_for(lambda: pending_is(redis, 0))
    assert [e.recording_id for e in await outputs(redis)] == ids
    assert handler.calls == Counter(dict.fromkeys(ids, 1))
    [(_id, dead)] = await redis.xrange(dead_letter_stream(RECORDINGS))
    assert dead[b"data"] == b"not json"


async def test_read_script_returns_any_field_bytes_intact(redis: Redis) -> None:
    """read.lua's packed reply survives separators, digits, NULs, newlines, empty strings and
    bytes that are not UTF-8, and leaves the entries pending like XREADGROUP."""
    await redis.xgroup_create("test:raw", "g", id="0", mkstream=True)
    written = [
        {b"type": b"12:34", b"data": b"a:b:\x00\n\r\n:9:"},
        {b"": b""},
        {b"data": bytes(range(256)) * 3},
        {b"k1": b"1", b"k2": b"22", b"k3": b""},
    ]
    ids = [await redis.xadd("test:raw", fields) for fields in written]  # type: ignore[arg-type]
    blob = await redis.register_script(READ_LUA)(keys=["test:raw"], args=["g", "c", 10])
    assert unpack_entries(blob) == list(zip(ids, written, strict=True))
    assert (await redis.xpending("test:raw", "g"))["pending"] == 4
    assert await redis.register_script(READ_LUA)(keys=["test:raw"], args=["g", "c", 10]) == b""


async def _called(handler: Recorder, rid: str) -> bool:
    return handler.calls[rid] > 0
