"""The dead-letter streams, for the people who run WhisPTT: list, show, replay, drop.

An entry lands in `<stream>:dead` after `max_deliveries` failed deliveries (finish.lua
writes it with the original `type`/`data`, the `error`, the `group` that gave up, the
`source_id` and the delivery count) and its user was told with a failure event. Replaying
puts the original entry back on its stream for that group; for it to count, two
idempotency markers have to go first, or the retry would be skipped as a duplicate:

- the giving-up group's marker for the recording on the source stream, and
- on every other stream, the markers that recorded the *failure* event the give-up
  published (a group downstream — the gateway storing "failed" — would otherwise skip the
  success that follows). A marker holds the id of the entry it recorded, so exactly those
  whose entry is a failure event are cleared; markers of successes stay, so nothing that
  already succeeded runs twice.

Other groups reading the source stream see the replayed entry too and skip it: their
markers for that recording stay.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, cast

from pydantic import BaseModel
from redis.asyncio import Redis

from whisp_shared.codec import DATA_FIELD, TYPE_FIELD
from whisp_shared.streams import (
    LIVE_RECORDINGS,
    PRIORITY_RECORDINGS,
    RECORDINGS,
    RESPONSES,
    TRANSCRIPTS,
)
from whisp_shared.streams import dead_letter_stream as dead_of

SOURCE_STREAMS = (PRIORITY_RECORDINGS, RECORDINGS, LIVE_RECORDINGS, TRANSCRIPTS, RESPONSES)
"""Streams consumed by a group that dead-letters (the gateway's included)."""
FAILURE_TYPES = frozenset({"transcription.failed", "agent.failed"})
"""What a give-up publishes for the user (`Consumer.on_failure`)."""
DONE_PREFIX = "whisp:done:"
Entry = tuple[bytes, dict[bytes, bytes]]


class DeadLetter(BaseModel):
    """One dead-lettered entry, as ops see it."""

    id: str
    """Its id in the dead-letter stream (what `show`, `replay` and `drop` take)."""
    stream: str
    """The stream it came from (and goes back to on replay)."""
    group: str
    source_id: str
    deliveries: int
    error: str
    type: str
    recording_id: str | None = None
    user_id: str | None = None
    created_at: datetime
    """When it was dead-lettered (from the entry id)."""
    data: dict[str, Any] | str
    """The event as JSON, or the raw text when it was not valid JSON (an undecodable entry)."""


class NotFound(LookupError):
    """No dead letter with that id in any dead-letter stream."""


def _text(fields: dict[bytes, bytes], key: bytes) -> str:
    return fields.get(key, b"").decode(errors="replace")


def _letter(stream: str, entry_id: bytes | str, fields: dict[bytes, bytes]) -> DeadLetter:
    ident = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    raw = _text(fields, DATA_FIELD)
    try:
        data: dict[str, Any] | str = json.loads(raw)
    except ValueError:
        data = raw
    if not isinstance(data, dict):
        data = raw
    event = data if isinstance(data, dict) else {}
    millis = int(ident.split("-", 1)[0])
    return DeadLetter(
        id=ident,
        stream=stream,
        group=_text(fields, b"group"),
        source_id=_text(fields, b"source_id"),
        deliveries=int(_text(fields, b"deliveries") or 0),
        error=_text(fields, b"error"),
        type=_text(fields, TYPE_FIELD),
        recording_id=event.get("recording_id"),
        user_id=event.get("user_id"),
        created_at=datetime.fromtimestamp(millis / 1000, UTC),
        data=data,
    )


async def list_dead(
    redis: Redis, streams: tuple[str, ...] = SOURCE_STREAMS, limit: int = 100
) -> list[DeadLetter]:
    """The newest `limit` dead letters of each stream, oldest first across streams."""
    letters: list[DeadLetter] = []
    for stream in streams:
        entries = cast(list[Entry], await redis.xrevrange(dead_of(stream), count=limit))
        letters.extend(_letter(stream, eid, fields) for eid, fields in entries)
    return sorted(letters, key=lambda letter: (letter.created_at, letter.id))


async def get_dead(redis: Redis, entry_id: str) -> DeadLetter:
    for stream in SOURCE_STREAMS:
        entries = await _one(redis, dead_of(stream), entry_id)
        if entries:
            eid, fields = entries[0]
            return _letter(stream, eid, fields)
    raise NotFound(entry_id)


async def _one(redis: Redis, stream: str, entry_id: str) -> list[Entry]:
    return cast(list[Entry], await redis.xrange(stream, min=entry_id, max=entry_id))


async def _records_failure(redis: Redis, stream: str, marked_id: bytes | None) -> bool:
    if not marked_id:
        return False
    entries = await _one(redis, stream, marked_id.decode())
    return bool(entries) and entries[0][1].get(TYPE_FIELD, b"").decode() in FAILURE_TYPES


async def _markers_to_clear(redis: Redis, letter: DeadLetter) -> list[str]:
    rid = letter.recording_id
    if rid is None:  # undecodable: its marker was per entry, and its replay is new anyway
        return []
    keys = [f"{DONE_PREFIX}{letter.stream}:{letter.group}:{rid}"]
    async for key in redis.scan_iter(match=f"{DONE_PREFIX}*:{rid}", count=500):
        name = cast(bytes, key).decode()
        stream = _marker_stream(name, rid)
        if stream is None or stream == letter.stream:
            continue
        if await _records_failure(redis, stream, cast(bytes | None, await redis.get(name))):
            keys.append(name)
    return keys


def _marker_stream(key: str, rid: str) -> str | None:
    """`whisp:done:<stream>:<group>:<rid>` → stream (stream names contain colons)."""
    middle = key[len(DONE_PREFIX) : -(len(rid) + 1)]
    stream, _, group = middle.rpartition(":")
    return stream if stream and group else None


async def replay(redis: Redis, letter: DeadLetter, maxlen: int) -> str:
    """Put `letter` back on its stream (see the module doc); returns the new entry's id.
    The dead letter is removed once the entry is back."""
    keys = await _markers_to_clear(redis, letter)
    if keys:
        await redis.delete(*keys)
    raw = letter.data if isinstance(letter.data, str) else json.dumps(letter.data)
    fields = {TYPE_FIELD: letter.type.encode(), DATA_FIELD: raw.encode()}
    new_id = await redis.xadd(letter.stream, cast(Any, fields), maxlen=maxlen, approximate=True)
    await redis.xdel(dead_of(letter.stream), letter.id)
    return new_id.decode() if isinstance(new_id, bytes) else str(new_id)


async def drop(redis: Redis, letter: DeadLetter) -> None:
    """Forget `letter` for good (its user was told when it was dead-lettered)."""
    await redis.xdel(dead_of(letter.stream), letter.id)
