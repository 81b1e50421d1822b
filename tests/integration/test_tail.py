"""Plain-XREAD tails: every reader sees every event, from any position."""

from __future__ import annotations

import asyncio
import json

from redis.asyncio import Redis

from tests.integration.bus_helpers import recording, transcript_for
from whisp_shared.bus import EventBus
from whisp_shared.config import BusSettings
from whisp_shared.events import EVENT_ADAPTER, TranscriptReady
from whisp_shared.streams import RESULT_STREAMS, TRANSCRIPTS
from whisp_shared.tail import StreamTail


async def test_two_tails_each_see_every_event_and_can_resume(
    bus_settings: BusSettings, redis: Redis
) -> None:
    bus = EventBus(bus_settings)
    await bus.start()
    try:
        tails = [StreamTail(redis, RESULT_STREAMS, EVENT_ADAPTER, block_ms=100) for _ in range(2)]
        starts = [await t.latest_ids() for t in tails]
        ids = [await bus.publish(TRANSCRIPTS, transcript_for(recording(f"r{i}"))) for i in range(3)]

        for tail, start in zip(tails, starts, strict=True):
            seen = await tail.read(dict(start))
            assert [s.entry_id for s in seen] == ids
            assert [s.event.recording_id for s in seen] == ["r0", "r1", "r2"]

        resumed = await tails[0].read({TRANSCRIPTS: ids[0], RESULT_STREAMS[1]: "0-0"})
        assert [s.entry_id for s in resumed] == ids[1:]
    finally:
        await bus.stop()


async def test_tail_skips_garbage_and_reads_plain_json_entries(redis: Redis) -> None:
    event = transcript_for(recording("plain"))
    await redis.xadd(TRANSCRIPTS, {"data": b"not json"})
    await redis.xadd(TRANSCRIPTS, {"data": event.model_dump_json()})
    tail = StreamTail(redis, [TRANSCRIPTS], EVENT_ADAPTER, block_ms=100)

    positions = {TRANSCRIPTS: "0-0"}
    seen = await tail.read(positions)
    assert [type(s.event) for s in seen] == [TranscriptReady]
    assert seen[0].event == event
    assert positions[TRANSCRIPTS] == seen[0].entry_id


async def test_follow_yields_events_published_after_it_started(
    bus_settings: BusSettings, redis: Redis
) -> None:
    await redis.xadd(TRANSCRIPTS, {"data": json.dumps({"old": True})})
    bus = EventBus(bus_settings)
    await bus.start()
    try:
        tail = StreamTail(redis, [TRANSCRIPTS], EVENT_ADAPTER, block_ms=100)
        follower = tail.follow()
        first = asyncio.ensure_future(anext(follower))
        await asyncio.sleep(0.2)
        await bus.publish(TRANSCRIPTS, transcript_for(recording("new")))
        got = await asyncio.wait_for(first, 5)
        assert got.event.recording_id == "new"
        await follower.aclose()
    finally:
        await bus.stop()
