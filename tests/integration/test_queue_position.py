"""Places in the transcription queue, read from the real Redis: entries on both lanes, the
`transcribers` group with some delivered, and no worker running (a test consumer reads
once, as a worker's first XREADGROUP would)."""

from __future__ import annotations

from typing import Any, cast

import pytest
from redis.asyncio import Redis

from whisp_shared.bus_group import ensure_group
from whisp_shared.codec import encode_entry
from whisp_shared.events import RecordingCompleted, TranscriptReady
from whisp_shared.lanes import Lane
from whisp_shared.queue import LANE_STREAMS, QueueEntry, QueuePosition
from whisp_shared.queue_position import (
    PROCESSING_KEY,
    PROCESSING_SAMPLES,
    LaneQueue,
    QueueSnapshot,
    read_queue,
    record_processing,
)
from whisp_shared.streams import PRIORITY_RECORDINGS, TRANSCRIBERS_GROUP

ACTIVE_MS = 60_000


async def queue(redis: Redis, lane: Lane, rid: str, duration_s: float) -> QueueEntry:
    """XADD as the audio service does; the entry as its answer names it."""
    event = RecordingCompleted(
        recording_id=rid, user_id="alice", audio_uri="file:///x.wav", duration_s=duration_s
    )
    fields = cast(Any, encode_entry(event))
    entry_id = await redis.xadd(LANE_STREAMS[lane], fields)
    return QueueEntry(
        lane=lane, entry_id=entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    )


async def take(redis: Redis, lane: Lane, count: int) -> None:
    """What a worker's read does: deliver the oldest `count` entries to it."""
    stream = LANE_STREAMS[lane]
    await redis.xreadgroup(TRANSCRIBERS_GROUP, "worker-1", {stream: ">"}, count=count)


async def ready(redis: Redis, audio_s: float, processing_s: float, live: bool = False) -> None:
    event = TranscriptReady(recording_id="done", user_id="alice", text="hi", engine="test",
                            model="none", audio_duration_s=audio_s, processing_s=processing_s,
                            real_time_factor=processing_s / audio_s, live=live)  # fmt: skip
    await record_processing(redis, event)


@pytest.fixture
async def lanes(redis: Redis) -> dict[str, QueueEntry]:
    """Five 2 s clips (two delivered to one worker) and three 10 s uploads; rate 0.5."""
    for stream in LANE_STREAMS.values():
        await ensure_group(redis, stream, TRANSCRIBERS_GROUP)
    entries = {f"p{n}": await queue(redis, "priority", f"p{n}", 2.0) for n in range(5)}
    entries |= {f"b{n}": await queue(redis, "bulk", f"b{n}", 10.0) for n in range(3)}
    await take(redis, "priority", 2)
    await ready(redis, 10.0, 4.0)
    await ready(redis, 10.0, 6.0)  # 10 s processing for 20 s of audio: 0.5 s per second
    return entries


def place(snapshot: QueueSnapshot, entries: dict[str, QueueEntry]) -> dict[str, Any]:
    found = {rid: snapshot.position(rid, entry) for rid, entry in entries.items()}
    return {rid: p and (p.position, p.ahead, p.at_least, p.eta_s) for rid, p in found.items()}


async def test_positions_count_what_waits_and_bulk_waits_for_priority_too(
    redis: Redis, lanes: dict[str, QueueEntry]
) -> None:
    snapshot = await read_queue(redis, lanes.values(), active_ms=ACTIVE_MS)

    assert snapshot.workers == 1 and snapshot.rate == pytest.approx(0.5)
    # (position, ahead, at_least, eta): eta = 0.5 x (audio ahead / 1 worker + its own)
    assert place(snapshot, lanes) == {
        "p0": None,  # taken by the worker
        "p1": None,
        "p2": (1, 0, False, 1.0),
        "p3": (2, 1, False, 2.0),
        "p4": (3, 2, False, 3.0),
        "b0": (4, 3, False, 8.0),  # the three priority clips first: 0.5 x (6 + 10)
        "b1": (5, 4, False, 13.0),
        "b2": (6, 5, False, 18.0),
    }
    position = snapshot.position("b2", lanes["b2"])
    assert position == QueuePosition(
        recording_id="b2", lane="bulk", position=6, ahead=5, workers=1, eta_s=18.0
    )

    await take(redis, "priority", 3)  # the clips go; the uploads move up
    await take(redis, "bulk", 1)
    after = await read_queue(redis, lanes.values(), active_ms=ACTIVE_MS)
    assert place(after, lanes) == {
        **dict.fromkeys(["p0", "p1", "p2", "p3", "p4", "b0"]),
        "b1": (1, 0, False, 5.0),
        "b2": (2, 1, False, 10.0),
    }


async def test_one_entry_alone_is_read_up_to_itself(
    redis: Redis, lanes: dict[str, QueueEntry]
) -> None:
    """The upload's answer reads only what it needs: its own lane up to it."""
    snapshot = await read_queue(redis, [lanes["p3"]], active_ms=ACTIVE_MS)
    assert [rid for rid, _ in snapshot.lanes["priority"].entries] == [
        lanes["p2"].entry_id,
        lanes["p3"].entry_id,
    ]
    assert snapshot.lanes["bulk"].entries == []
    assert place(snapshot, {"p3": lanes["p3"]}) == {"p3": (2, 1, False, 2.0)}


async def test_the_cap_bounds_the_read_and_says_at_least(
    redis: Redis, lanes: dict[str, QueueEntry]
) -> None:
    snapshot = await read_queue(redis, lanes.values(), active_ms=ACTIVE_MS, cap=2)

    assert len(snapshot.lanes["priority"].entries) == 2
    assert len(snapshot.lanes["bulk"].entries) == 2
    found = place(snapshot, lanes)
    assert found["p2"] == (1, 0, False, 1.0) and found["p3"] == (2, 1, False, 2.0)
    assert found["p4"] == (3, 2, True, 2.0)  # beyond the cap: at least 2 ahead
    infos = await redis.xinfo_groups(PRIORITY_RECORDINGS)
    if next(i for i in infos if i["name"] == TRANSCRIBERS_GROUP.encode()).get("lag") is None:
        # Redis 6 has no lag: the priority clips ahead of an upload are counted to the cap.
        assert found["b0"] == (3, 2, True, 7.0)
        assert found["b2"] == (5, 4, True, 12.0)  # beyond the cap its own audio is unknown
    else:
        # Redis 7's lag counts all three exactly; their audio is the read ones' mean x 3.
        assert found["b0"] == (4, 3, False, 8.0)
        assert found["b2"] == (6, 5, True, 13.0)  # beyond the cap its own audio is unknown


def test_without_lag_a_capped_lane_is_a_lower_bound() -> None:
    capped = LaneQueue("0-0", [("1-0", 2.0), ("2-0", 2.0)], complete=False)
    assert capped.waiting() == (2, 4.0, True)
    counted = LaneQueue("0-0", [("1-0", 2.0), ("2-0", 2.0)], complete=False, lag=6)
    assert counted.waiting() == (6, 12.0, False)


async def test_no_active_worker_no_estimate_and_no_group_nothing_delivered(
    redis: Redis,
) -> None:
    clip = await queue(redis, "priority", "c0", 1.0)  # no group yet: no worker ever started
    upload = await queue(redis, "bulk", "u0", 30.0)
    await ready(redis, 1.0, 0.5)
    snapshot = await read_queue(redis, [clip, upload], active_ms=ACTIVE_MS)
    assert snapshot.workers == 0
    assert place(snapshot, {"c0": clip, "u0": upload}) == {
        "c0": (1, 0, False, None),
        "u0": (2, 1, False, None),
    }

    await ensure_group(redis, PRIORITY_RECORDINGS, TRANSCRIBERS_GROUP)
    await redis.xgroup_createconsumer(PRIORITY_RECORDINGS, TRANSCRIBERS_GROUP, "idle-worker")
    assert (await read_queue(redis, [clip], active_ms=ACTIVE_MS)).workers == 1
    assert (await read_queue(redis, [clip], active_ms=0)).workers == 0  # idle too long


async def test_an_entry_gone_from_the_stream_has_no_place(
    redis: Redis, lanes: dict[str, QueueEntry]
) -> None:
    await redis.xdel(PRIORITY_RECORDINGS, lanes["p3"].entry_id)
    snapshot = await read_queue(redis, lanes.values(), active_ms=ACTIVE_MS)
    assert snapshot.position("p3", lanes["p3"]) is None
    assert place(snapshot, {"p4": lanes["p4"]}) == {"p4": (2, 1, False, 2.0)}


async def test_the_rolling_record_keeps_the_last_samples(redis: Redis) -> None:
    for n in range(PROCESSING_SAMPLES + 5):
        await ready(redis, 1.0, 1.0 if n < 5 else 0.25)  # the five slow ones are the oldest
    assert await redis.llen(PROCESSING_KEY) == PROCESSING_SAMPLES
    snapshot = await read_queue(redis, [], active_ms=ACTIVE_MS)
    assert snapshot.rate == pytest.approx(0.25)


async def test_live_transcripts_do_not_make_uploads_look_quick(redis: Redis) -> None:
    """A streamed press is final moments after its release: no lane's rate."""
    await ready(redis, 10.0, 5.0)
    for _ in range(20):
        await ready(redis, 5.0, 0.05, live=True)
    snapshot = await read_queue(redis, [], active_ms=ACTIVE_MS)
    assert snapshot.rate == pytest.approx(0.5)
    assert await redis.llen(PROCESSING_KEY) == 1
