"""Redis Streams bus: publish events, consume them in groups with at-least-once delivery and
exactly-once *effects*, and push live-only events to users.

The consuming loop is our own (`bus_group`, `bus_consumer`, `bus_finish`), not FastStream's.
Ours reads and finishes in batches; FastStream's read one entry at a time (a prefetched
entry would get no heartbeat and a peer would take it, doing the work twice), resolved each
message's context in a worker thread and left us four round trips per entry (read, EXISTS,
XPENDING, the finish): about 600 entries/s per group, where Redis itself does tens of
thousands. What the loop guarantees:

- the handler's output, the idempotency marker for its `recording_id` and the XACK are
  written in one Lua script (many entries per call), so a crash can never publish without
  acking or ack without publishing, and two workers racing on a reclaimed entry publish one
  result;
- every entry a process holds, running or waiting in its batch, is heartbeated (one XCLAIM
  JUSTID for all of them), so live work is not stolen; a killed worker's entries go idle
  and a peer reclaims them;
- a handler error leaves the entry pending (retried on reclaim after `claim_idle_ms`);
  after `max_deliveries` it goes to `<stream>:dead` with its error, and the user gets the
  failure event the consumer's `on_failure` builds — never silence;
- on stop, entries not started are handed back to peers at once, in-flight ones get
  `graceful_timeout_s`.

Live-only events (partial text, answer deltas) skip all of that: `publish_live` appends them
to one short capped stream with no group, which every gateway replica tails.
"""

from __future__ import annotations

import asyncio
import os
import socket
from typing import Any, cast

from pydantic import BaseModel
from redis.asyncio import Redis

from whisp_shared.bus_consumer import Consumer, FailureFactory, Handler
from whisp_shared.bus_depth import read_depth
from whisp_shared.bus_group import GroupReader, ensure_group
from whisp_shared.bus_trim import Trimmer
from whisp_shared.codec import encode_entry
from whisp_shared.config import BusSettings
from whisp_shared.events import EventBase
from whisp_shared.logs import get_logger
from whisp_shared.redis_client import open_redis, redacted
from whisp_shared.streams import GROUP_STREAMS, LIVE
from whisp_shared.views import LiveEvent

__all__ = ["Consumer", "EventBus", "FailureFactory", "Handler", "default_consumer_name"]

log = get_logger(__name__)


def default_consumer_name() -> str:
    """Unique per process, readable in XINFO CONSUMERS."""
    return f"{socket.gethostname()}-{os.getpid()}"


class EventBus:
    """A service's connection to the streams; start it in the app's lifespan."""

    def __init__(self, settings: BusSettings, consumer_name: str | None = None) -> None:
        self.settings = settings
        self.consumer_name = consumer_name or default_consumer_name()
        self._redis: Redis | None = None
        self._consumers: list[Consumer] = []
        self._groups: list[GroupReader] = []
        self._trimmer: Trimmer | None = None
        self._held = False

    @property
    def redis(self) -> Redis:
        if self._redis is None:
            raise RuntimeError("EventBus.connect() has not run")
        return self._redis

    async def connect(self) -> None:
        """Open the connection and create the groups, without consuming yet."""
        if self._redis is None:
            self._redis = open_redis(self.settings.redis_url)
            await self._ensure_groups()

    def hold(self) -> None:
        """Do not consume when started (publishing still works): a service that cannot do
        its work (a worker without its model) must take none, so peers get all of it."""
        self._held = True

    async def start(self) -> None:
        """Connect (if needed) and start consuming, unless held."""
        await self.connect()
        if self._held or self._groups:
            return
        await self._ensure_groups()  # consumers registered after connect() too
        self._groups = [
            GroupReader(self.redis, consumer, self.settings, self.consumer_name)
            for consumer in self._consumers
        ]
        for group in self._groups:
            group.start()
        if self._consumers:
            read = {c.stream for c in self._consumers}
            written = {c.output_stream for c in self._consumers} & set(GROUP_STREAMS)
            self._trimmer = Trimmer(self.redis, read | written, self.settings)
            self._trimmer.start()

    async def stop(self) -> None:
        """Stop reading; in-flight handlers get `graceful_timeout_s`, the rest stays pending
        (handed back to peers). Safe to call twice."""
        if self._redis is None:
            return
        groups, self._groups = self._groups, []
        if self._trimmer is not None:
            await self._trimmer.stop()
            self._trimmer = None
        await asyncio.gather(*(group.stop() for group in groups))
        redis, self._redis = self._redis, None
        await redis.aclose()

    async def ping(self) -> bool:
        try:
            return bool(await self.redis.ping())
        except Exception:  # any failure means "not ready"
            return False

    async def ensure_group(self, stream: str, group: str) -> None:
        """Create the group at the stream's start, so entries published before any worker ran
        are still delivered."""
        await ensure_group(self.redis, stream, group)

    async def group_lag(self, stream: str, group: str) -> int:
        """Entries of `stream` the group has not finished: never delivered plus pending."""
        depth = await read_depth(self.redis, stream, group)
        return depth.lag + depth.pending

    async def publish(self, stream: str, event: EventBase) -> str:
        """XADD one event; returns its stream id. With `replicas_to_ack`, it returns once
        that many replicas hold it too (WAIT), so a failover cannot lose accepted work."""
        entry_id = await self._add(stream, event, self.settings.maxlen_of(stream))
        wanted = self.settings.replicas_to_ack
        if wanted:
            acked = await self.redis.wait(wanted, self.settings.replica_ack_ms)
            if acked < wanted:
                # Accepted anyway (it is in the master's AOF): refusing would make the
                # caller retry and publish it twice. Ops see it, and Redis's own
                # `min-replicas-to-write` refuses writes while no replica is connected.
                log.warning("publish not replicated in time", stream=stream, acked=acked,
                            wanted=wanted, redis=redacted(self.settings.redis_url))  # fmt: skip
        return entry_id

    async def publish_live(self, event: LiveEvent) -> str:
        """Push a live-only event to its user's open pages: one XADD to the short
        `whisp:live` stream, which no group reads and nothing stores (every gateway replica
        tails it and sends the event, without an SSE id, to the owner's connections).
        A page that is not open when it passes never sees it (the stored snapshot that
        follows carries the outcome). Returns its stream id."""
        return await self._add(LIVE, event, self.settings.live_maxlen)

    def consume(self, consumer: Consumer) -> None:
        """Read `consumer.stream` in `consumer.group` once started (call before start)."""
        self._consumers.append(consumer)

    async def _ensure_groups(self) -> None:
        for consumer in self._consumers:
            await self.ensure_group(consumer.stream, consumer.group)

    async def _add(self, stream: str, event: BaseModel, maxlen: int) -> str:
        entry_id = await self.redis.xadd(
            stream, cast(Any, encode_entry(event)), maxlen=maxlen, approximate=True
        )
        return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
