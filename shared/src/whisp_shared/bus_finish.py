"""Finish many deliveries in one round trip (finish.lua), coalescing whatever is ready.

Workers hand each `Finish` to the group's `Finisher`; its task writes everything that
finished since its last write in one script call. While one call is in flight the next
finishes gather, so fast handlers are written a batch at a time and a lone slow one is
written the moment it ends (there is no timer to wait for). A write the connection loses
is sent again: the script is idempotent (the done-marker's SET NX decides, XACK and HDEL
repeat harmlessly), so a resend never publishes twice.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import suppress
from importlib import resources

from prometheus_client import Counter, Histogram
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from whisp_shared.bus_consumer import Consumer, Finish
from whisp_shared.codec import event_type
from whisp_shared.config import BusSettings
from whisp_shared.logs import get_logger
from whisp_shared.streams import dead_letter_stream

log = get_logger(__name__)

FINISH_LUA = (resources.files(__package__) / "finish.lua").read_text()
"""Done-markers, outputs, dead letters, acks and kept errors of many entries: one step."""
RETRY_S = 0.5
"""Pause between attempts to write finishes while Redis is away."""

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

CounterChild = Counter
"""What `Counter.labels` returns (prometheus_client types it as the parent class)."""
Written = Callable[[list[Finish]], None]
"""Told which finishes are settled (written, or given up and left pending)."""


class Finisher:
    """One consumer group's writer of finishes; `run` is its task."""

    def __init__(
        self, redis: Redis, consumer: Consumer, settings: BusSettings, written: Written
    ) -> None:
        self._script = redis.register_script(FINISH_LUA)  # EVALSHA, loaded again if flushed
        self._consumer = consumer
        self._settings = settings
        self._written = written
        self._fixed_keys = [
            consumer.stream,
            consumer.output_stream,
            dead_letter_stream(consumer.stream),
            consumer.errors_key,
        ]
        self._ready: list[Finish] = []
        self._wake = asyncio.Event()
        self._closing = False
        self._abandoned = asyncio.Event()
        self._handled = HANDLE_SECONDS.labels(consumer.stream, consumer.group)
        self._outcomes: dict[str, CounterChild] = {}

    def put(self, finish: Finish) -> None:
        self._ready.append(finish)
        self._wake.set()

    def close(self) -> None:
        """Write what is ready, then end `run`."""
        self._closing = True
        self._wake.set()

    def abandon(self) -> None:
        """Stop retrying a write Redis does not take (stopping, out of time): those entries
        stay pending, for a peer to finish."""
        self._abandoned.set()

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._ready = self._ready, []
            if batch:
                await self._write(batch)
            if self._closing and not self._ready:
                return

    async def _write(self, batch: list[Finish]) -> None:
        keys, args = self._call(batch)
        while True:
            try:
                firsts: bytes = await self._script(keys=keys, args=args)
                break
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                if self._abandoned.is_set():
                    log.warning("finishes not written; entries left pending", error=str(exc))
                    self._written(batch)
                    return
                log.warning("writing finishes failed; retrying", error=str(exc))
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._abandoned.wait(), RETRY_S)
            except Exception:
                # A script error (a key of the wrong type): entries after the failing one
                # were not acked and stay pending; retrying would fail the same way.
                log.exception("finish script failed; entries left pending")
                self._written(batch)
                return
        self._count(batch, firsts)
        self._written(batch)

    def _call(self, batch: list[Finish]) -> tuple[list[str], list[str | bytes | int]]:
        consumer, settings = self._consumer, self._settings
        keys: list[str] = [*self._fixed_keys]
        args: list[str | bytes | int] = [
            consumer.group,
            settings.maxlen_of(consumer.output_stream),
            settings.stream_maxlen,  # dead letters: no group reads them
            settings.done_ttl_s,
        ]
        for finish in batch:
            output, (dead_type, dead_data) = finish.output, finish.dead_letter or (b"", b"")
            keys.append(finish.done_key)
            args += (
                finish.kind,
                finish.taken.entry_id,
                event_type(output) if output is not None else "",
                output.model_dump_json() if output is not None else "",
                dead_type,
                dead_data,
                finish.error,
                finish.taken.deliveries,
            )
        return keys, args

    def _count(self, batch: list[Finish], firsts: bytes) -> None:
        now = time.perf_counter()
        for finish, first in zip(batch, firsts.decode(), strict=True):
            outcome = finish.outcome
            if finish.kind == "done" and first == "0":
                outcome = "duplicate"  # a racing delivery of the same recording won
                log.info("finished elsewhere first; acked", entry_id=finish.taken.entry_id)
            self._outcome(outcome).inc()
            if finish.kind != "retry":
                self._handled.observe(now - finish.taken.taken_at)

    def _outcome(self, outcome: str) -> CounterChild:
        """The labelled counter, looked up once per outcome (not once per entry)."""
        child = self._outcomes.get(outcome)
        if child is None:
            consumer = self._consumer
            child = self._outcomes[outcome] = CONSUMED.labels(
                consumer.stream, consumer.group, outcome
            )
        return child
