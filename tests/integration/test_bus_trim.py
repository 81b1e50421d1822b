"""Streams are trimmed by their slowest group: what every group finished goes (past the
retention), what any group still holds or has not been given stays — however long."""

from __future__ import annotations

from typing import Any, cast

from redis.asyncio import Redis

from tests.integration.bus_helpers import Recorder, consumer, recording, wait_for
from whisp_shared.bus_trim import trim_stream
from whisp_shared.config import BusSettings
from whisp_shared.streams import RECORDINGS, TRANSCRIBERS_GROUP, TRANSCRIPTS, USER_EVENTS

NOW = BusSettings(stream_retention_s=0)
"""Keep nothing finished: only the groups' positions bound the trim."""


async def ids(redis: Redis, stream: str) -> list[str]:
    return [eid.decode() for eid, _ in cast(list[Any], await redis.xrange(stream))]


async def test_a_slow_group_keeps_what_it_has_not_finished(
    redis: Redis, bus_settings: BusSettings, make_bus
) -> None:
    publisher = make_bus("pub")
    await publisher.connect()
    await publisher.ensure_group(RECORDINGS, "slow")
    for n in range(30):
        await publisher.publish(RECORDINGS, recording(f"r{n}"))
    all_ids = await ids(redis, RECORDINGS)
    # The transcribers finish everything; "slow" took ten and finished four.
    await make_bus("w", consumer(Recorder(), max_workers=4)).start()

    async def transcribed() -> bool:
        return await redis.xlen(TRANSCRIPTS) == 30

    await wait_for(transcribed)
    taken = await redis.xreadgroup("slow", "s1", {RECORDINGS: ">"}, count=10)
    taken_ids = [eid for eid, _ in taken[0][1]]
    await redis.xack(RECORDINGS, "slow", *taken_ids[:4])

    assert await trim_stream(redis, RECORDINGS, NOW) == 4
    assert await ids(redis, RECORDINGS) == all_ids[4:]  # from slow's oldest pending on

    await redis.xack(RECORDINGS, "slow", *taken_ids[4:])
    assert await trim_stream(redis, RECORDINGS, NOW) == 6
    assert await ids(redis, RECORDINGS) == all_ids[10:]  # never given to slow: kept

    await redis.xreadgroup("slow", "s1", {RECORDINGS: ">"})
    assert await trim_stream(redis, RECORDINGS, NOW) == 0  # all pending with slow
    info = await redis.xinfo_groups(RECORDINGS)
    assert {g["name"].decode(): int(g["pending"]) for g in info} == {
        TRANSCRIBERS_GROUP: 0,
        "slow": 20,
    }


async def test_finished_entries_stay_for_the_retention_time(
    redis: Redis, bus_settings: BusSettings, make_bus
) -> None:
    await make_bus("w", consumer(Recorder())).start()
    publisher = make_bus("pub")
    await publisher.connect()
    for n in range(5):
        await publisher.publish(RECORDINGS, recording(f"k{n}"))

    async def transcribed() -> bool:
        return await redis.xlen(TRANSCRIPTS) == 5

    await wait_for(transcribed)
    assert await trim_stream(redis, RECORDINGS, BusSettings(stream_retention_s=3600)) == 0
    assert await redis.xlen(RECORDINGS) == 5
    assert await trim_stream(redis, RECORDINGS, NOW) == 5


async def test_streams_no_group_reads_keep_their_length_cap(
    redis: Redis, bus_settings: BusSettings, make_bus
) -> None:
    publisher = make_bus("pub", stream_maxlen=1_000)
    await publisher.connect()
    for n in range(5):
        await publisher.publish(USER_EVENTS, recording(f"u{n}"))
    assert await trim_stream(redis, USER_EVENTS, NOW) == 0  # nothing says what is finished
    assert await redis.xlen(USER_EVENTS) == 5
    assert BusSettings().maxlen_of(USER_EVENTS) == BusSettings().stream_maxlen
    assert BusSettings().maxlen_of(RECORDINGS) == BusSettings().stream_hard_maxlen
