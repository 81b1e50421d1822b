"""A group's lag and pending, read as KEDA's triggers read them, and the gauges that show them
(real Redis)."""

from __future__ import annotations

import asyncio
import contextlib

from prometheus_client import REGISTRY
from redis.asyncio import Redis

from tests.integration.bus_helpers import Recorder, consumer, recording, wait_for
from whisp_shared.bus_depth import GroupDepth, read_depth, watch_depth
from whisp_shared.codec import encode_entry
from whisp_shared.streams import AGENTS_GROUP, RECORDINGS, TRANSCRIBERS_GROUP, TRANSCRIPTS


def gauges(stream: str, group: str) -> tuple[float | None, float | None]:
    """The two series as Prometheus would scrape them."""
    labels = {"stream": stream, "group": group}
    return (REGISTRY.get_sample_value("whisp_bus_group_lag", labels),
            REGISTRY.get_sample_value("whisp_bus_group_pending", labels))  # fmt: skip


async def publish(redis: Redis, n: int) -> None:
    for i in range(n):
        await redis.xadd(RECORDINGS, encode_entry(recording(f"d{i}")))  # type: ignore[arg-type]


async def keda_reads(redis: Redis, stream: str, group: str) -> GroupDepth:
    """What KEDA 2.20's redis-streams scaler computes: XINFO GROUPS `lag` of the group for
    lagCount, XPENDING's count for pendingEntriesCount (pkg/scalers/redis_streams_scaler.go)."""
    (info,) = [g for g in await redis.xinfo_groups(stream) if g["name"].decode() == group]
    summary = await redis.xpending(stream, group)
    return GroupDepth(int(info["lag"]), int(summary["pending"]))


async def test_depth_is_lag_and_pending_apart_as_keda_reads_them(make_bus, redis: Redis) -> None:
    """Two entries in flight on a worker that holds two, three never delivered."""
    await redis.xgroup_create(RECORDINGS, TRANSCRIBERS_GROUP, id="0", mkstream=True)
    await publish(redis, 5)
    busy = Recorder(delay=30)
    bus = make_bus("busy", consumer(busy, max_workers=2, read_count=2), graceful_timeout_s=0.1)
    await bus.start()
    await wait_for(lambda: _busy(busy, 2))

    depth = await read_depth(redis, RECORDINGS, TRANSCRIBERS_GROUP)

    assert depth == GroupDepth(lag=3, pending=2)
    assert depth == await keda_reads(redis, RECORDINGS, TRANSCRIBERS_GROUP)


async def test_depth_of_a_stream_or_group_not_there_yet_is_zero(redis: Redis) -> None:
    assert await read_depth(redis, "test:no-such-stream", "nobody") == GroupDepth(0, 0)
    await redis.xgroup_create(RECORDINGS, TRANSCRIBERS_GROUP, id="0", mkstream=True)
    assert await read_depth(redis, RECORDINGS, "no-such-group") == GroupDepth(0, 0)


async def test_the_gauges_follow_each_stream_and_group(redis: Redis) -> None:
    await redis.xgroup_create(RECORDINGS, TRANSCRIBERS_GROUP, id="0", mkstream=True)
    await redis.xgroup_create(TRANSCRIPTS, AGENTS_GROUP, id="0", mkstream=True)
    await publish(redis, 4)
    await redis.xreadgroup(TRANSCRIBERS_GROUP, "w", {RECORDINGS: ">"}, count=1)
    watched = [(RECORDINGS, TRANSCRIBERS_GROUP), (TRANSCRIPTS, AGENTS_GROUP)]
    task = asyncio.create_task(watch_depth(redis, watched, every_s=0.05))
    try:

        async def shows(stream: str, group: str, lag: float, pending: float) -> bool:
            return gauges(stream, group) == (lag, pending)

        await wait_for(lambda: shows(RECORDINGS, TRANSCRIBERS_GROUP, 3, 1))
        await wait_for(lambda: shows(TRANSCRIPTS, AGENTS_GROUP, 0, 0))
        await redis.xreadgroup(TRANSCRIBERS_GROUP, "w", {RECORDINGS: ">"}, count=2)
        await wait_for(lambda: shows(RECORDINGS, TRANSCRIBERS_GROUP, 1, 3))
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _busy(handler: Recorder, n: int) -> bool:
    return len(handler.calls) == n
