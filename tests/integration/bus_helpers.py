"""Small helpers for bus tests: event factories, a counting handler, a consumer in its own
process, and a polling wait."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

from prometheus_client import REGISTRY
from redis.asyncio import Redis

from whisp_shared.bus import Consumer, Handler
from whisp_shared.codec import decode_entry, decode_fields
from whisp_shared.events import (
    Event,
    EventBase,
    FailureFields,
    RecordingCompleted,
    TranscriptionFailed,
    TranscriptReady,
)
from whisp_shared.streams import RECORDINGS, TRANSCRIBERS_GROUP, TRANSCRIPTS, USER_EVENTS
from whisp_shared.views import USER_EVENT_ADAPTER, UserEvent

ROOT = Path(__file__).resolve().parents[2]


def recording(recording_id: str, user_id: str = "alice") -> RecordingCompleted:
    return RecordingCompleted(
        recording_id=recording_id, user_id=user_id, audio_uri=f"file:///tmp/{recording_id}.wav"
    )


def transcript_for(event: Event, text: str = "hello") -> TranscriptReady:
    return TranscriptReady(
        **event.follow_up(),
        text=text,
        engine="test",
        model="none",
        audio_duration_s=1.0,
        processing_s=0.01,
        real_time_factor=0.01,
    )


def failure_for(event: Event, failure: FailureFields) -> TranscriptionFailed:
    return TranscriptionFailed(**event.follow_up(), **failure.model_dump())


async def stream_events(redis: Redis, stream: str) -> list[Event]:
    return [decode_entry(fields) for _id, fields in await redis.xrange(stream)]


async def user_events(redis: Redis) -> list[UserEvent]:
    """What the gateway forwarded to the users' live stream (snapshots)."""
    entries = await redis.xrange(USER_EVENTS)
    return [decode_fields(fields, USER_EVENT_ADAPTER) for _id, fields in entries]


async def wait_for(
    predicate: Callable[[], Awaitable[bool]], timeout: float = 10.0, interval: float = 0.05
) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


class Recorder:
    """A handler that counts calls per recording and can be told to fail or to take time."""

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


def consumer(handler: Handler, **kwargs: object) -> Consumer:
    """The transcribers' group on the recordings stream, with `handler`."""
    return Consumer(
        RECORDINGS,
        TRANSCRIBERS_GROUP,
        TRANSCRIPTS,
        handler,
        failure_for,
        **kwargs,  # type: ignore[arg-type]
    )


def consumer_process(redis_url: str, claim_idle_ms: int, *args: object) -> subprocess.Popen[bytes]:
    """`consumer_proc.py` (named "doomed") in its own process; see its usage line."""
    return subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "tests/integration/consumer_proc.py"),
            redis_url,
            str(claim_idle_ms),
            *map(str, args),
        ],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


async def outputs(redis: Redis) -> list[Event]:
    return await stream_events(redis, TRANSCRIPTS)


async def pending_count(redis: Redis, consumer_name: str | None = None) -> int:
    """Entries of the transcribers' group delivered and not acked (to one consumer, if named)."""
    info = await redis.xpending(RECORDINGS, TRANSCRIBERS_GROUP)
    if consumer_name is None:
        return int(info["pending"])
    counts = {c["name"].decode(): int(c["pending"]) for c in info["consumers"]}
    return counts.get(consumer_name, 0)


async def has_outputs(redis: Redis, n: int) -> bool:
    return await redis.xlen(TRANSCRIPTS) >= n


async def stream_len(redis: Redis, stream: str, n: int) -> bool:
    return await redis.xlen(stream) >= n


async def pending_is(redis: Redis, n: int) -> bool:
    return await pending_count(redis) == n


async def depth_exported(watched: set[tuple[str, str]]) -> bool:
    """This process exports a lag and a pending series for every (stream, group)."""
    return all(
        REGISTRY.get_sample_value(name, {"stream": stream, "group": group}) is not None
        for stream, group in watched
        for name in ("whisp_bus_group_lag", "whisp_bus_group_pending")
    )
