"""Trim a stream by its slowest group, not by a length: finished work goes, unfinished stays.

`XADD … MAXLEN ~ N` drops the oldest entries whoever still needs them: a group that fell
behind (the agents down for an hour while uploads go on) would silently lose recordings.
So the streams groups read are trimmed here instead, with `XTRIM MINID`: below the oldest
entry some group has not finished — its oldest pending entry, or the first it has not been
given — and older than `stream_retention_s` (kept a while for `whisp dlq` and debugging).
Every consuming process runs one trimmer for the streams it reads; they agree, since the
cut depends only on Redis's state, so running many is harmless.

Each round also removes the consumer names of pods gone without a clean stop, once nothing
is pending for them (`bus_members.forget_gone`).

`stream_hard_maxlen` stays on XADD as the last guard of Redis's memory: a group that is gone
for good (renamed, never started again) would otherwise pin its stream forever. The
trimmer warns, and counts, while a stream is within 10 % of that cap with work unfinished.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from contextlib import suppress

from prometheus_client import Counter
from redis.asyncio import Redis

from whisp_shared.bus_members import forget_gone
from whisp_shared.config import BusSettings
from whisp_shared.logs import get_logger

log = get_logger(__name__)

STOP_TIMEOUT_S = 2.0

TRIMMED = Counter("whisp_bus_trimmed_total", "Finished entries trimmed from a stream.", ["stream"])
NEAR_CAP = Counter(
    "whisp_bus_near_cap_total",
    "Trim rounds that found a stream near stream_maxlen with work unfinished.",
    ["stream"],
)


def _after(entry_id: str) -> str:
    """The smallest id greater than `entry_id` (MINID keeps ids ≥ it)."""
    millis, _, seq = entry_id.partition("-")
    return f"{millis}-{int(seq or 0) + 1}"


def _older(a: str, b: str) -> str:
    def key(entry_id: str) -> tuple[int, int]:
        millis, _, seq = entry_id.partition("-")
        return int(millis), int(seq or 0)

    return a if key(a) <= key(b) else b


async def unfinished_from(redis: Redis, stream: str) -> str | None:
    """The oldest id some group of `stream` has not finished; None when no group reads it
    (then only `stream_maxlen` bounds it)."""
    groups = await redis.xinfo_groups(stream)
    if not groups:
        return None
    bound: str | None = None
    for group in groups:
        name = group["name"]
        if int(group["pending"]):
            summary = await redis.xpending(stream, name)
            oldest = summary["min"]
            first = oldest.decode() if isinstance(oldest, bytes) else str(oldest)
        else:
            last = group["last-delivered-id"]
            first = _after(last.decode() if isinstance(last, bytes) else str(last))
        bound = first if bound is None else _older(bound, first)
    return bound


async def trim_stream(redis: Redis, stream: str, settings: BusSettings) -> int:
    """One round for `stream`; returns how many entries went. A stream no group reads
    (yet) is left alone: nothing says what is finished."""
    if not await redis.exists(stream):
        return 0
    first_unfinished = await unfinished_from(redis, stream)
    if first_unfinished is None:
        return 0
    retention_cut = f"{int((time.time() - settings.stream_retention_s) * 1000)}-0"
    cut = _older(first_unfinished, retention_cut)
    removed = int(await redis.xtrim(stream, minid=cut, approximate=False))
    if removed:
        TRIMMED.labels(stream).inc(removed)
    length = int(await redis.xlen(stream))
    if length > 0.9 * settings.stream_hard_maxlen:
        NEAR_CAP.labels(stream).inc()
        log.error("stream near its cap with work unfinished: a group is far behind or gone",
                  stream=stream, length=length, cap=settings.stream_hard_maxlen,
                  oldest_unfinished=first_unfinished)  # fmt: skip
    return removed


class Trimmer:
    """Trims `streams` every `trim_interval_s` until stopped."""

    def __init__(self, redis: Redis, streams: Iterable[str], settings: BusSettings) -> None:
        self._redis = redis
        self._streams = sorted(set(streams))
        self._settings = settings
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """End the loop. A flag as well as cancel(): on Python 3.11 redis-py can swallow a
        cancel mid-command; the flag ends the loop at its next step, and the wait is bounded
        so a stop never hangs on it."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping.set()
        task.cancel()
        _done, late = await asyncio.wait([task], timeout=STOP_TIMEOUT_S)
        if late:
            log.warning("trimmer did not stop in time; left to end with the loop")

    async def _run(self) -> None:
        while not self._stopping.is_set():
            for stream in self._streams:
                if self._stopping.is_set():
                    return
                try:
                    await trim_stream(self._redis, stream, self._settings)
                    await forget_gone(self._redis, stream, self._settings.gone_consumer_idle_s)
                except Exception as exc:  # Redis away: the next round tries again
                    log.warning("trimming failed", stream=stream, error=str(exc))
            with suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._settings.trim_interval_s)
