"""Small helpers for bus tests: event factories and a polling wait."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis

from whisp_shared.codec import decode_entry, decode_fields
from whisp_shared.events import (
    Event,
    FailureFields,
    RecordingCompleted,
    TranscriptionFailed,
    TranscriptReady,
)
from whisp_shared.streams import USER_EVENTS
from whisp_shared.views import USER_EVENT_ADAPTER, UserEvent


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
