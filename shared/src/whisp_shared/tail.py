"""Follow result streams with plain XREAD (no group), so every gateway replica sees every event.

Stream ids double as SSE event ids: a client that reconnects with `Last-Event-ID`
resumes exactly after the last entry it saw.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

from pydantic import TypeAdapter, ValidationError
from redis.asyncio import Redis

from whisp_shared.codec import decode_fields
from whisp_shared.logs import get_logger

log = get_logger(__name__)

RawEntry = tuple[bytes, dict[bytes, bytes]]
T = TypeVar("T")


@dataclass(frozen=True)
class TailedEvent(Generic[T]):
    stream: str
    entry_id: str
    event: T


class StreamTail(Generic[T]):
    """Reads `streams` from given positions onward, validating entries with `adapter` (the
    streams' event family); undecodable entries are logged and skipped."""

    def __init__(
        self,
        redis: Redis,
        streams: Sequence[str],
        adapter: TypeAdapter[T],
        block_ms: int = 1000,
        count: int = 100,
    ) -> None:
        self.redis = redis
        self.adapter = adapter
        self.streams = tuple(streams)
        self.block_ms = block_ms
        self.count = count

    async def latest_ids(self) -> dict[str, str]:
        """Positions that start reading at 'now' (`$` is racy across several XREADs)."""
        ids: dict[str, str] = {}
        for stream in self.streams:
            last = cast(list[RawEntry], await self.redis.xrevrange(stream, count=1))
            ids[stream] = last[0][0].decode() if last else "0-0"
        return ids

    async def read(self, positions: dict[str, str], block: bool = True) -> list[TailedEvent[T]]:
        """One XREAD (blocking up to `block_ms` unless `block` is False); advances `positions`
        in place past everything returned."""
        response = cast(
            list[tuple[bytes, list[RawEntry]]] | None,
            await self.redis.xread(
                cast(Any, positions), count=self.count, block=self.block_ms if block else None
            ),
        )
        out: list[TailedEvent[T]] = []
        for raw_stream, entries in response or []:
            stream = raw_stream.decode()
            for raw_id, fields in entries:
                entry_id = raw_id.decode()
                positions[stream] = entry_id
                try:
                    out.append(TailedEvent(stream, entry_id, decode_fields(fields, self.adapter)))
                except (ValidationError, ValueError) as exc:
                    log.error(
                        "skipping undecodable entry",
                        stream=stream,
                        entry_id=entry_id,
                        error=str(exc),
                    )
        return out

    async def follow(
        self, positions: dict[str, str] | None = None
    ) -> AsyncIterator[TailedEvent[T]]:
        positions = dict(positions) if positions else await self.latest_ids()
        while True:
            for item in await self.read(positions):
                yield item
