"""Redis Streams bus: publish events, consume them in groups with at-least-once delivery and
exactly-once *effects*.

FastStream runs the read loops (XREADGROUP for new entries, XAUTOCLAIM for entries a dead
peer left pending). What FastStream leaves to us is here:

- the handler's output, the idempotency marker for its `recording_id` and the XACK are
  written in one Lua script, so a crash can never publish without acking or ack without
  publishing, and two workers racing on a reclaimed entry publish one result;
- while a handler runs, a heartbeat (XCLAIM … JUSTID) keeps its entry fresh so live work
  is not stolen; a killed worker's entry goes idle and a peer reclaims it;
- a handler error leaves the entry pending (retried on reclaim after `claim_idle_ms`);
  after `max_deliveries` it goes to `<stream>:dead` with its error, and the user gets the
  failure event the consumer's `on_failure` builds — never silence.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, cast

from faststream import AckPolicy
from faststream.redis import RedisBroker, StreamSub
from faststream.redis.annotations import RedisStreamMessage
from prometheus_client import Counter, Histogram
from pydantic import ValidationError
from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from whisp_shared.codec import DATA_FIELD, TYPE_FIELD, decode_entry, encode_entry, event_type
from whisp_shared.config import BusSettings
from whisp_shared.errors import WhispError
from whisp_shared.events import Event, EventBase, FailureFields
from whisp_shared.logs import event_context, get_logger
from whisp_shared.streams import dead_letter_stream

log = get_logger(__name__)

Handler = Callable[[Event], Awaitable[EventBase | None]]
"""Turns one input event into one output event (or None when there is nothing to say)."""
FailureFactory = Callable[[Event, FailureFields], EventBase]
"""Builds the event that tells the user their work failed for good."""

CONSUMED = Counter(
    "whisp_bus_entries_total",
    "Stream entries handled by a consumer group, by outcome.",
    ["stream", "group", "outcome"],
)
HANDLE_SECONDS = Histogram(
    "whisp_bus_handle_seconds",
    "Time from taking an entry to acking it.",
    ["stream", "group"],
)

_FINISH_LUA = (resources.files(__package__) / "finish.lua").read_text()
"""Marks the recording done, publishes the output (or dead-letters), acks: one step."""


def default_consumer_name() -> str:
    """Unique per process, readable in XINFO CONSUMERS."""
    return f"{socket.gethostname()}-{os.getpid()}"


def _accept_all(_event: Event) -> bool:
    return True


@dataclass(frozen=True)
class Consumer:
    """One consumer group's job: what it reads, what it writes, how it fails."""

    stream: str
    group: str
    output_stream: str
    handler: Handler
    on_failure: FailureFactory
    accepts: Callable[[Event], bool] = field(default=_accept_all)
    """Entries this returns False for are acked without running the handler."""
    max_workers: int = 1
    """Entries handled at once by this process."""


class EventBus:
    """A service's connection to the streams; start it in the app's lifespan."""

    def __init__(self, settings: BusSettings, consumer_name: str | None = None) -> None:
        self.settings = settings
        self.consumer_name = consumer_name or default_consumer_name()
        self.broker = RedisBroker(
            settings.redis_url,
            graceful_timeout=settings.graceful_timeout_s,
            logger=logging.getLogger("faststream"),
        )
        self._redis: Redis | None = None
        self._finish: AsyncScript | None = None
        self._consumers: list[Consumer] = []
        self._held = False

    @property
    def finish_script(self) -> AsyncScript:
        if self._finish is None:
            raise RuntimeError("EventBus.connect() has not run")
        return self._finish

    @property
    def redis(self) -> Redis:
        if self._redis is None:
            raise RuntimeError("EventBus.start() has not run")
        return self._redis

    async def connect(self) -> None:
        """Open the connection and create the groups, without consuming yet."""
        if self._redis is None:
            self._redis = await self.broker.connect()
            self._finish = self._redis.register_script(_FINISH_LUA)  # EVALSHA, cached
            for consumer in self._consumers:
                await self.ensure_group(consumer.stream, consumer.group)

    def hold(self) -> None:
        """Do not consume when started (publishing still works): a service that cannot do
        its work (a worker without its model) must take none, so peers get all of it."""
        self._held = True

    async def start(self) -> None:
        """Connect (if needed) and start consuming, unless held."""
        await self.connect()
        if not self._held:
            await self.broker.start()

    async def stop(self) -> None:
        """Stop reading; in-flight handlers get `graceful_timeout_s`, the rest stays pending.
        Safe to call twice."""
        if self._redis is None:
            return
        await self.broker.stop()
        self._redis = None

    async def ping(self) -> bool:
        try:
            return bool(await self.redis.ping())
        except Exception:  # any failure means "not ready"
            return False

    async def ensure_group(self, stream: str, group: str) -> None:
        """Create the group at the stream's start, so entries published before any worker ran
        are still delivered (FastStream would create it at `$`)."""
        try:
            await self.redis.xgroup_create(stream, group, id="0", mkstream=True)
        except Exception as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def group_lag(self, stream: str, group: str) -> int:
        """Entries of `stream` the group has not finished: never delivered plus pending."""
        for info in await self.redis.xinfo_groups(stream):
            if info["name"].decode() != group:
                continue
            lag = info.get("lag")
            if lag is None:  # Redis < 7 has no lag field: count what follows the cursor
                last = info["last-delivered-id"].decode()
                lag = len(await self.redis.xrange(stream, min=f"({last}", count=100_000) or [])
            return int(lag) + int(info["pending"])
        return 0

    async def publish(self, stream: str, event: EventBase) -> str:
        """XADD one event; returns its stream id."""
        entry_id = await self.redis.xadd(
            stream,
            cast(Any, encode_entry(event)),
            maxlen=self.settings.stream_maxlen,
            approximate=True,
        )
        return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)

    def consume(self, consumer: Consumer) -> None:
        """Register the group reader and the reclaimer for `consumer` (call before start)."""
        self._consumers.append(consumer)
        reclaimer_name = f"{self.consumer_name}:reclaim"
        for name, idle in (
            (self.consumer_name, None),
            (reclaimer_name, self.settings.claim_idle_ms),
        ):
            sub = StreamSub(
                consumer.stream,
                group=consumer.group,
                consumer=name,
                last_id=">",
                min_idle_time=idle,
                # One at a time: a prefetched entry waits without a heartbeat and a peer
                # would reclaim it, doing the work twice.
                max_records=1,
                polling_interval=self.settings.read_block_ms,
            )
            self.broker.subscriber(
                stream=sub,
                ack_policy=AckPolicy.MANUAL,
                max_workers=consumer.max_workers if idle is None else 1,
            )(self._make_handler(consumer, name))

    def _make_handler(
        self, consumer: Consumer, consumer_name: str
    ) -> Callable[[RedisStreamMessage], Awaitable[None]]:
        async def handle(msg: RedisStreamMessage) -> None:
            entry_id = msg.raw_message["message_ids"][0].decode()
            started = time.perf_counter()
            outcome = await _Delivery(self, consumer, consumer_name, msg, entry_id).run()
            CONSUMED.labels(consumer.stream, consumer.group, outcome).inc()
            HANDLE_SECONDS.labels(consumer.stream, consumer.group).observe(
                time.perf_counter() - started
            )

        handle.__name__ = f"handle_{consumer.group}_{'reclaim' if ':' in consumer_name else 'new'}"
        return handle


def _payload(fields: dict[bytes, bytes]) -> tuple[bytes, bytes]:
    """The entry's type and body as written (all its fields, when it has no body)."""
    return fields.get(TYPE_FIELD, b""), fields.get(DATA_FIELD) or repr(fields).encode()


class _Delivery:
    """One delivery of one entry: decide, run, and finish atomically."""

    def __init__(
        self,
        bus: EventBus,
        consumer: Consumer,
        consumer_name: str,
        msg: RedisStreamMessage,
        entry_id: str,
    ) -> None:
        self.bus = bus
        self.consumer = consumer
        self.consumer_name = consumer_name
        self.msg = msg
        self.entry_id = entry_id
        self.errors_key = f"whisp:errors:{consumer.stream}:{consumer.group}"

    @property
    def redis(self) -> Redis:
        return self.bus.redis

    async def run(self) -> str:
        raw = self.msg.raw_message["data"]
        try:
            event = decode_entry(raw)
        except (ValidationError, ValueError) as exc:
            log.error("undecodable entry dead-lettered", entry_id=self.entry_id, error=str(exc))
            await self._finish(None, dead_letter=_payload(raw), error=str(exc))
            return "undecodable"
        with event_context(event):
            return await self._run_event(event)

    async def _run_event(self, event: Event) -> str:
        consumer = self.consumer
        if not consumer.accepts(event):
            await self.redis.xack(consumer.stream, consumer.group, self.entry_id)
            return "ignored"
        if await self.redis.exists(self._done_key(event)):
            log.info("duplicate delivery skipped", entry_id=self.entry_id)
            await self._finish(event, deliveries=0)
            return "duplicate"
        deliveries = await self.msg.get_delivery_count()
        if deliveries > self.bus.settings.max_deliveries:
            last = cast(bytes | None, await self.redis.hget(self.errors_key, self.entry_id))
            reason = (
                last.decode()
                if last
                else f"the worker handling it stopped {deliveries - 1} times before finishing"
            )
            await self._fail(event, FailureFields(code="gave_up", message=reason), deliveries)
            return "dead_lettered"
        try:
            output = await self._with_heartbeat(consumer.handler(event))
        except WhispError as exc:
            return await self._handler_failed(event, exc.as_failure(), deliveries)
        except Exception as exc:
            log.exception("handler failed", entry_id=self.entry_id, deliveries=deliveries)
            failure = FailureFields(
                code="internal_error", message=f"{type(exc).__name__}: {exc}", retryable=True
            )
            return await self._handler_failed(event, failure, deliveries)
        await self._finish(event, output=output, deliveries=deliveries)
        return "published" if output is not None else "done"

    async def _handler_failed(self, event: Event, failure: FailureFields, deliveries: int) -> str:
        if failure.retryable and deliveries < self.bus.settings.max_deliveries:
            await self.redis.hset(self.errors_key, self.entry_id, failure.message)
            log.warning(
                "handler failed; entry left pending for retry",
                code=failure.code,
                error=failure.message,
                deliveries=deliveries,
            )
            return "retry"
        await self._fail(event, failure, deliveries)
        return "dead_lettered"

    async def _fail(self, event: Event, failure: FailureFields, deliveries: int) -> None:
        log.error(
            "entry dead-lettered; user told",
            code=failure.code,
            error=failure.message,
            deliveries=deliveries,
        )
        await self._finish(
            event,
            output=self.consumer.on_failure(event, failure),
            dead_letter=_payload(self.msg.raw_message["data"]),
            error=f"{failure.code}: {failure.message}",
            deliveries=deliveries,
        )

    def _done_key(self, event: Event) -> str:
        """One result per recording, per group, per stream (a group may read several)."""
        return f"whisp:done:{self.consumer.stream}:{self.consumer.group}:{event.recording_id}"

    async def _finish(
        self,
        event: Event | None,
        output: EventBase | None = None,
        dead_letter: tuple[bytes, bytes] | None = None,
        error: str = "",
        deliveries: int = 0,
    ) -> None:
        consumer, settings = self.consumer, self.bus.settings
        done_key = (
            self._done_key(event)
            if event
            else f"whisp:done:{consumer.stream}:{consumer.group}:entry:{self.entry_id}"
        )
        out_data = output.model_dump_json().encode() if output is not None else b""
        dead_type, dead_data = dead_letter or (b"", b"")
        await self.bus.finish_script(
            keys=[
                done_key,
                consumer.output_stream,
                consumer.stream,
                self.errors_key,
                dead_letter_stream(consumer.stream),
            ],
            args=[
                settings.done_ttl_s,
                settings.stream_maxlen,
                consumer.group,
                self.entry_id,
                out_data,
                dead_data,
                error,
                deliveries,
                "1" if dead_letter is not None else "",
                event_type(output) if output is not None else "",
                dead_type,
            ],
        )

    async def _with_heartbeat(self, work: Awaitable[EventBase | None]) -> EventBase | None:
        """Run `work` while re-claiming our own entry so peers see it as alive."""
        stop = asyncio.Event()
        beat = asyncio.create_task(self._heartbeat(stop))
        try:
            return await work
        finally:
            # A flag as well as cancel(): on Python 3.11 redis-py's wait_for can swallow a
            # cancel, and a heartbeat that lives on would hold the entry forever.
            stop.set()
            beat.cancel()
            await asyncio.wait([beat], timeout=5.0)

    async def _heartbeat(self, stop: asyncio.Event) -> None:
        interval = self.bus.settings.claim_idle_ms / 3000
        while not stop.is_set():
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
            if stop.is_set():
                return
            try:
                await self.redis.xclaim(
                    self.consumer.stream,
                    self.consumer.group,
                    self.consumer_name,
                    min_idle_time=0,
                    message_ids=[self.entry_id],
                    justid=True,
                )
            except Exception as exc:  # a missed beat only risks a duplicate *attempt*
                log.warning("heartbeat failed", error=str(exc))
