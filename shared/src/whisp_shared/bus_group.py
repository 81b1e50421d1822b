"""One consumer group in one process: read in batches, run handlers, heartbeat, stop cleanly.

Four kinds of task share a table of the entries this process holds (`held`):

- the reader takes entries a batch at a time (up to `read_count` in hand), when one of the
  workers would otherwise be idle: XAUTOCLAIM of entries a dead peer left idle (every
  `read_block_ms`, and at once on start), else new entries (read.lua for a backlog, else
  XREADGROUP `>` BLOCK). What a delivery needs to know comes in one round trip per batch,
  never one per entry: new entries are on their first delivery; one EXISTS of the
  done-markers (and an MGET when it finds any) lets a recording already done skip its
  handler (only its ack is left); reclaimed entries add their last errors (HMGET) and
  delivery counts (XPENDING) to that round trip;
- `max_workers` workers run `deliver` on the entries in turn and hand each finish over;
- the finisher (`bus_finish`) writes finishes in batches and then lets go of the entries;
- the heartbeat re-claims every held entry (running, waiting or being written) with one
  XCLAIM JUSTID each `claim_idle_ms / 3`, so a peer never takes an entry that sits in this
  process's batch, however long the batch takes. A killed process stops beating, its
  entries go idle, and a peer's XAUTOCLAIM takes them.

On stop: no more reads; entries no worker has started are handed back at once (their idle
time set past `claim_idle_ms`, their delivery count as it was before this process took
them), in-flight handlers get `graceful_timeout_s`, their finishes are written, and
whatever is still held is handed back the same way for a peer to finish. Last, a process
that holds nothing any more leaves the group (XGROUP DELCONSUMER, only while its pending
count is 0, checked in the same script): a scaled-in pod does not stay behind as a dead
name in XINFO CONSUMERS. One that still has entries pending (handed back, or left for a
retry) stays, since deleting a consumer drops its pending entries, and a peer reclaims them
(then a peer's trimmer removes the name: `bus_members`).
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Iterable
from contextlib import suppress
from typing import Any, cast

from redis.asyncio import Redis

from whisp_shared.bus_consumer import Consumer, Finish, Taken, deliver
from whisp_shared.bus_finish import Finisher
from whisp_shared.bus_members import leave
from whisp_shared.bus_read import READ_LUA, RawEntry, unpack_entries
from whisp_shared.config import BusSettings
from whisp_shared.events import Event
from whisp_shared.logs import get_logger

log = get_logger(__name__)

BACKOFF_S = 1.0
"""Pause after a failed read (Redis restarting) before trying again."""


class GroupReader:
    """Reads `consumer.stream` as `consumer_name` in `consumer.group`; `start`, then `stop`."""

    def __init__(
        self, redis: Redis, consumer: Consumer, settings: BusSettings, consumer_name: str
    ) -> None:
        self.redis = redis
        self.consumer = consumer
        self.settings = settings
        self.name = consumer_name
        self.limit = max(consumer.read_count or settings.read_count, consumer.max_workers)
        """Most entries in hand (running or waiting) at once; also the most one read takes."""
        self._held: dict[str, Taken] = {}
        self._waiting: asyncio.Queue[Taken | None] = asyncio.Queue()
        self._running = 0
        self._room = asyncio.Event()
        self._reading = False
        self._beating = asyncio.Event()
        self._cursor = "0-0"
        self._backlog = False
        self._finisher = Finisher(redis, consumer, settings, self._let_go)
        self._read_script = redis.register_script(READ_LUA)

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        self._reading = True
        self._room.set()
        self._reader = asyncio.create_task(self._read_loop())
        self._workers = [
            asyncio.create_task(self._work()) for _ in range(self.consumer.max_workers)
        ]
        self._finishing = asyncio.create_task(self._finisher.run())
        self._heartbeat = asyncio.create_task(self._beat())

    async def stop(self) -> None:
        """Stop reading; hand back what no worker started; give in-flight work
        `graceful_timeout_s` to finish and be written; hand back the rest; leave the group
        if nothing is pending for this consumer any more."""
        deadline = time.monotonic() + self.settings.graceful_timeout_s
        # A flag as well as cancel(): on Python 3.11 redis-py's wait_for can swallow a
        # cancel; the flag then ends the loop after its current read.
        self._reading = False
        self._reader.cancel()
        await asyncio.wait([self._reader], timeout=self.settings.read_block_ms / 1000 + 2)
        unstarted = []
        while not self._waiting.empty():
            if (taken := self._waiting.get_nowait()) is not None:
                unstarted.append(taken)
        await self._hand_back(unstarted)
        for _ in self._workers:
            self._waiting.put_nowait(None)
        _done, late = await asyncio.wait(self._workers, timeout=_left(deadline))
        for task in late:
            task.cancel()
        if late:
            log.warning("stopping with handlers unfinished; their entries stay pending",
                        stream=self.consumer.stream, unfinished=len(late))  # fmt: skip
            await asyncio.wait(late, timeout=2.0)
        self._finisher.close()
        _done, unwritten = await asyncio.wait([self._finishing], timeout=_left(deadline))
        if unwritten:
            self._finisher.abandon()
            await asyncio.wait(unwritten, timeout=2.0)
        self._beating.set()
        await asyncio.wait([self._heartbeat], timeout=2.0)
        await self._hand_back(list(self._held.values()))
        await self._leave()

    # --- reading -------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        next_reclaim = 0.0
        while self._reading:
            try:
                await self._room.wait()
                room = self.limit - self._waiting.qsize() - self._running
                if time.monotonic() >= next_reclaim:
                    claimed, more = await self._reclaim(room)
                    interval = 0.0 if more else self.settings.read_block_ms / 1000
                    next_reclaim = time.monotonic() + interval
                    if claimed:
                        continue
                await self._read_new(room)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis restarting: keep trying, never die
                log.warning("bus read failed; retrying", stream=self.consumer.stream,
                            error=str(exc))  # fmt: skip
                await asyncio.sleep(BACKOFF_S)
                if "NOGROUP" in str(exc):  # Redis came back without its data
                    await ensure_group(self.redis, self.consumer.stream, self.consumer.group)

    async def _read_new(self, room: int) -> None:
        """After a full batch (a backlog, most likely), the next in one bulk string
        (read.lua); else block in XREADGROUP, which answers at once if entries wait."""
        consumer = self.consumer
        entries: list[RawEntry] = []
        if self._backlog:
            blob = await self._read_script(
                keys=[consumer.stream], args=[consumer.group, self.name, room]
            )
            entries = unpack_entries(blob)
        else:
            response = cast(
                list[tuple[bytes, list[RawEntry]]] | None,
                await self.redis.xreadgroup(
                    consumer.group,
                    self.name,
                    {consumer.stream: ">"},
                    count=room,
                    block=self.settings.read_block_ms,
                ),
            )
            for _stream, found in response or []:
                entries = found
        self._backlog = len(entries) >= room
        await self._take(entries, reclaimed=False)

    async def _reclaim(self, room: int) -> tuple[bool, bool]:
        """One XAUTOCLAIM page of entries idle past `claim_idle_ms`: (any taken, more left)."""
        consumer = self.consumer
        reply: list[Any] = await self.redis.xautoclaim(
            consumer.stream,
            consumer.group,
            self.name,
            min_idle_time=self.settings.claim_idle_ms,
            start_id=self._cursor,
            count=room,
        )
        cursor, entries = reply[0], cast(list[RawEntry], reply[1])
        self._cursor = cursor.decode() if isinstance(cursor, bytes) else str(cursor)
        taken = await self._take(entries, reclaimed=True)
        return taken > 0, self._cursor != "0-0"

    async def _take(self, entries: list[RawEntry], reclaimed: bool) -> int:
        """Learn what each delivery needs in one round trip, then queue them for the workers."""
        batch: list[Taken] = []
        for raw_id, fields in entries:
            if raw_id is None or fields is None:
                continue  # deleted while pending (trimmed); nothing to run
            entry_id = raw_id.decode()
            if entry_id not in self._held:  # a late heartbeat let our own reclaim find it
                batch.append(Taken(entry_id, fields, deliveries=1))
        if not batch:
            return 0
        for taken in batch:
            taken.decode()
        await self._look_up(batch, reclaimed)
        for taken in batch:
            self._held[taken.entry_id] = taken
            self._waiting.put_nowait(taken)
        self._update_room()
        return len(batch)

    async def _look_up(self, batch: list[Taken], reclaimed: bool) -> None:
        consumer = self.consumer
        decoded = [t for t in batch if t.event is not None]
        done_keys = [consumer.done_key(cast(Event, t.event).recording_id) for t in decoded]
        pipe = self.redis.pipeline(transaction=False)
        if done_keys:  # one number back (0, nearly always), not one reply per entry
            pipe.exists(*done_keys)
        if reclaimed:
            pipe.hmget(consumer.errors_key, [t.entry_id for t in batch])
            for taken in batch:  # reclaims are rare: one small XPENDING each, exact
                pipe.xpending_range(
                    consumer.stream, consumer.group, min=taken.entry_id, max=taken.entry_id, count=1
                )
        replies = await pipe.execute()
        if done_keys and replies.pop(0):  # some are done already: which
            markers = await self.redis.mget(done_keys)
            for taken, marker in zip(decoded, markers, strict=True):
                taken.done_already = marker is not None
        if reclaimed:
            errors, pending = replies[0], replies[1:]
            for taken, error, info in zip(batch, errors, pending, strict=True):
                taken.last_error = error.decode() if error else None
                if info:
                    taken.deliveries = int(info[0]["times_delivered"])
                else:  # finished elsewhere since the claim: only the ack is left
                    taken.done_already = True

    def _update_room(self) -> None:
        """Read again once a worker would otherwise be idle and there is room in hand."""
        in_hand = self._waiting.qsize() + self._running
        if in_hand < self.consumer.max_workers and in_hand < self.limit:
            self._room.set()
        else:
            self._room.clear()

    # --- working -------------------------------------------------------------------------

    async def _work(self) -> None:
        while (taken := await self._waiting.get()) is not None:
            taken.started = True
            self._running += 1
            try:
                finish = await deliver(self.consumer, self.settings, taken)
            except Exception:  # a bug in on_failure, say: leave the entry for a later try
                log.exception("delivery failed; entry left pending", entry_id=taken.entry_id)
                self._held.pop(taken.entry_id, None)
            else:
                self._finisher.put(finish)
            finally:
                self._running -= 1
                self._update_room()

    def _let_go(self, finished: list[Finish]) -> None:
        """The finisher settled these: acked, or left pending for a later delivery."""
        for finish in finished:
            self._held.pop(finish.taken.entry_id, None)

    # --- heartbeat and hand-back ---------------------------------------------------------

    async def _beat(self) -> None:
        interval = self.settings.claim_idle_ms / 3000
        while not self._beating.is_set():
            with suppress(TimeoutError):
                await asyncio.wait_for(self._beating.wait(), interval)
            if self._beating.is_set() or not self._held:
                continue
            consumer = self.consumer
            try:
                await self.redis.xclaim(
                    consumer.stream,
                    consumer.group,
                    self.name,
                    min_idle_time=0,
                    message_ids=list(self._held),
                    justid=True,
                )
            except Exception as exc:  # a missed beat only risks a duplicate *attempt*
                log.warning("heartbeat failed", stream=consumer.stream, error=str(exc))

    async def _hand_back(self, entries: Iterable[Taken]) -> None:
        """Make entries this process will not finish claimable by a peer now, not after
        `claim_idle_ms`; one never started gets its delivery count back."""
        by_count: dict[int, list[str]] = defaultdict(list)
        for taken in entries:
            self._held.pop(taken.entry_id, None)
            count = taken.deliveries if taken.started else taken.deliveries - 1
            by_count[count].append(taken.entry_id)
        if not by_count:
            return
        consumer = self.consumer
        pipe = self.redis.pipeline(transaction=False)
        for count, ids in by_count.items():
            pipe.xclaim(
                consumer.stream,
                consumer.group,
                self.name,
                min_idle_time=0,
                message_ids=list(ids),
                idle=self.settings.claim_idle_ms,
                retrycount=count,
                justid=True,
            )
        try:
            await pipe.execute()
        except Exception as exc:  # they stay pending and go idle on their own
            log.warning("handing entries back failed", stream=consumer.stream, error=str(exc))

    async def _leave(self) -> None:
        """XGROUP DELCONSUMER this consumer, unless entries are still pending for it."""
        consumer = self.consumer
        try:
            left = await leave(self.redis, consumer.stream, consumer.group, self.name)
        except Exception as exc:  # Redis away: the name stays, as after a crash
            log.warning("leaving the group failed", stream=consumer.stream, error=str(exc))
            return
        if left:
            log.info("left the group", stream=consumer.stream, group=consumer.group)
        else:
            log.info("stays in the group: entries pending for a peer to reclaim",
                     stream=consumer.stream, group=consumer.group)  # fmt: skip


async def ensure_group(redis: Redis, stream: str, group: str) -> None:
    """Create the group at the stream's start (and the stream), so entries published before
    any consumer ran are still delivered; a group that exists is left as it is."""
    try:
        await redis.xgroup_create(stream, group, id="0", mkstream=True)
    except Exception as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def _left(deadline: float) -> float:
    return max(deadline - time.monotonic(), 0.0)
