"""Fan the users' live streams out to the SSE connections of this replica.

One XREAD loop per process reads `whisp:user-events` (stored snapshots) and `whisp:live`
(live-only events: partial text, answer deltas) — no group: every replica sees every
event — and hands each event to the queues of its owner's connections only, in order.
A connection that cannot keep up is dropped rather than allowed to grow memory; the
browser reconnects with `Last-Event-ID` and `replay` fills the gap from Redis with the
stored snapshots (live-only events are never replayed: they are not stored).
"""

from __future__ import annotations

import asyncio
import re
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from redis.asyncio import Redis

from whisp_shared.logs import get_logger
from whisp_shared.streams import LIVE, USER_EVENTS
from whisp_shared.tail import StreamTail, TailedEvent
from whisp_shared.views import (
    CLIENT_EVENT_ADAPTER,
    USER_EVENT_ADAPTER,
    LiveEvent,
    TranscriptUpdated,
    UserEvent,
)

log = get_logger(__name__)
QUEUE_SIZE = 256

UserItem = TailedEvent[UserEvent]
"""A stored snapshot: its stream id is its SSE id."""
LiveItem = TailedEvent[LiveEvent]
"""A live-only event: sent without an SSE id, so it never moves a browser's resume point
(`Last-Event-ID` names stored snapshots only), and never replayed."""
T = TypeVar("T")


def stream_id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


_STREAM_ID = re.compile(r"([0-9]{1,20})(?:-([0-9]{1,20}))?")


def valid_stream_id(entry_id: str) -> bool:
    """What Redis accepts as a stream id (`ms` or `ms-seq`, each a 64-bit unsigned int);
    `int()` alone would let `5-`, `+5`, `1_000` or `1--1` through to a failing XREAD."""
    match = _STREAM_ID.fullmatch(entry_id)
    return match is not None and all(int(part or 0) < 2**64 for part in match.groups())


@dataclass(eq=False)  # identity-hashed: each connection is its own subscription
class Listener(Generic[T]):
    """One user's events as they arrive; None in the queue ends it."""

    user_id: str
    queue: asyncio.Queue[T | None] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    overflowed: bool = False

    def offer(self, item: T) -> bool:
        """Queue `item`; False (and `overflowed`) when the listener cannot keep up."""
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.overflowed = True
            return False
        return True


class Subscription(Listener[UserItem]):
    """Stored snapshots only (what `?wait=true` waits on)."""


@dataclass(eq=False)
class Connection(Listener[UserItem | LiveItem]):
    """An SSE connection: stored snapshots and live-only events, in the order they came.

    `after`: the stored-snapshot stream id the hub had routed when the connection joined:
    every snapshot after it reaches this queue, none before it does — the exact point a
    fresh connection resumes from if it is dropped before its first event."""

    after: str = "0-0"


class EventHub:
    def __init__(self, redis: Redis, block_ms: int = 1000) -> None:
        self.redis = redis
        self.tail = StreamTail(redis, [USER_EVENTS, LIVE], CLIENT_EVENT_ADAPTER, block_ms=block_ms)
        self.stored = StreamTail(redis, [USER_EVENTS], USER_EVENT_ADAPTER, block_ms=block_ms)
        self._subs: dict[str, set[Subscription | Connection]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None
        self._running = False
        self._positions: dict[str, str] = {}
        """The read loop's positions, advanced in place (and routed) with no await between:
        at any await, everything up to them has been routed and nothing after."""

    @property
    def connections(self) -> int:
        return sum(len(s) for s in self._subs.values())

    async def start(self) -> None:
        self._positions = await self.tail.latest_ids()
        self._running = True
        self._task = asyncio.create_task(self._run(self._positions))

    def disconnect_all(self) -> None:
        """End every SSE stream now (the gateway is stopping): each browser reconnects, to
        another replica if there is one, and resumes with `Last-Event-ID`."""
        for subs in list(self._subs.values()):
            for sub in list(subs):
                self._close(sub)

    async def stop(self) -> None:
        # A flag as well as cancel(): on Python 3.11 a cancel that lands as redis-py's
        # wait_for completes is lost; the flag ends the loop after the current XREAD.
        self._running = False
        if self._task:
            self._task.cancel()
            await asyncio.wait([self._task], timeout=self.tail.block_ms / 1000 + 2)
        self.disconnect_all()

    async def _run(self, positions: dict[str, str]) -> None:
        while self._running:
            try:
                for item in await self.tail.read(positions):
                    self._route(item.stream, item.entry_id, item.event)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis restarting: keep trying, never die
                log.warning("user-events read failed; retrying", error=str(exc))
                await asyncio.sleep(1.0)

    def _route(self, stream: str, entry_id: str, event: TranscriptUpdated | LiveEvent) -> None:
        """Stored snapshots to every listener of their user, live-only events to the user's
        SSE connections; a type on the other stream (a publisher's bug) goes nowhere."""
        if stream == USER_EVENTS and isinstance(event, TranscriptUpdated):
            stored = TailedEvent(stream, entry_id, event)
            for sub in self._listeners(event.user_id):
                if not sub.offer(stored):
                    self._drop(sub)
        elif stream == LIVE and not isinstance(event, TranscriptUpdated):
            live = TailedEvent(stream, entry_id, event)
            for sub in self._listeners(event.user_id):
                if isinstance(sub, Connection) and not sub.offer(live):
                    self._drop(sub)
        else:
            log.error("event on the wrong stream skipped", stream=stream, type=event.type)

    def _listeners(self, user_id: str) -> list[Subscription | Connection]:
        return list(self._subs.get(user_id, ()))

    def _drop(self, sub: Subscription | Connection) -> None:
        self._close(sub)
        log.warning("slow SSE client dropped", user_id=sub.user_id)

    def _close(self, sub: Subscription | Connection) -> None:
        """End a connection's stream: its generator sees None and returns. Everything still
        queued goes too (not just enough to fit the None): the client's last id must come
        before every event it missed, or its `Last-Event-ID` resume would skip them."""
        self._unsubscribe(sub)
        while not sub.queue.empty():
            sub.queue.get_nowait()
        sub.queue.put_nowait(None)

    @asynccontextmanager
    async def subscribe(self, user_id: str) -> AsyncIterator[Subscription]:
        """The user's stored snapshots from now on, for the life of the block."""
        sub = Subscription(user_id)
        with self._listening(sub):
            yield sub

    @asynccontextmanager
    async def connect(self, user_id: str) -> AsyncIterator[Connection]:
        """What an SSE connection sends from now on: snapshots and live-only events."""
        conn = Connection(user_id, after=self._positions.get(USER_EVENTS, "0-0"))
        with self._listening(conn):
            yield conn

    @contextmanager
    def _listening(self, sub: Subscription | Connection) -> Iterator[None]:
        self._subs[sub.user_id].add(sub)
        try:
            yield
        finally:
            self._unsubscribe(sub)

    def _unsubscribe(self, sub: Subscription | Connection) -> None:
        subs = self._subs.get(sub.user_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.user_id]

    async def replay(self, user_id: str, after: str) -> AsyncIterator[tuple[list[UserItem], str]]:
        """The user's events after `after` (exclusive), straight from Redis, one XREAD batch
        at a time: (theirs in the batch, the id the scan has reached). However many other
        users' events lie in between, nothing of theirs is skipped."""
        positions = {USER_EVENTS: after}
        while True:
            batch = await self.stored.read(positions, block=False)
            reached = positions[USER_EVENTS]
            if reached == after:  # caught up (undecodable entries still move `reached`)
                return
            yield [item for item in batch if item.event.user_id == user_id], reached
            after = reached
