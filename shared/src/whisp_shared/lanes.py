"""A priority lane: push-to-talk clips are transcribed before long uploads, without starving
them.

Recordings travel on two streams (`streams.PRIORITY_RECORDINGS` for what a person waits
for — short clips, device and live recordings — and `streams.RECORDINGS` for the rest),
each read by its own consumer group reader; both readers' handlers run through one `Lanes`,
the worker's slots. A free slot goes to a waiting priority entry first; a bulk entry gets it
when no priority entry waits, or after `max_streak` priority grants in a row while bulk
waited (so a steady stream of clips cannot stop uploads forever).

What a lane cannot do is stop a long upload that already runs: a clip that arrives while
every slot is busy waits for the first slot to free. `bulk_share` bounds that: bulk work
may hold at most that share of the slots (at least one), so with two or more slots one
stays free for clips. With one slot per process the fleet's autoscaler bounds it.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Literal, TypeVar

Lane = Literal["priority", "bulk"]
T = TypeVar("T")
A = TypeVar("A")


class Lanes:
    """`slots` concurrent jobs shared by two lanes (see the module doc)."""

    def __init__(self, slots: int, bulk_share: float = 1.0, max_streak: int = 8) -> None:
        if slots < 1 or not 0 < bulk_share <= 1 or max_streak < 1:
            raise ValueError("slots ≥ 1, 0 < bulk_share ≤ 1, max_streak ≥ 1")
        self.slots = slots
        self.bulk_slots = max(1, math.floor(slots * bulk_share)) if slots > 1 else 1
        self.max_streak = max_streak
        self._busy = {"priority": 0, "bulk": 0}
        self._waiting: dict[Lane, deque[asyncio.Future[None]]] = {
            "priority": deque(),
            "bulk": deque(),
        }
        self._streak = 0

    @property
    def busy(self) -> int:
        return self._busy["priority"] + self._busy["bulk"]

    def waiting(self, lane: Lane) -> int:
        return sum(1 for f in self._waiting[lane] if not f.done())

    def _can_run(self, lane: Lane) -> bool:
        if self.busy >= self.slots:
            return False
        return lane == "priority" or self._busy["bulk"] < self.bulk_slots

    def _next(self) -> Lane | None:
        """Which lane the next free slot goes to, if any may take it."""
        priority, bulk = self.waiting("priority"), self.waiting("bulk")
        bulk_ok = bulk and self._can_run("bulk")
        if priority and self._can_run("priority"):
            if bulk_ok and self._streak >= self.max_streak:
                return "bulk"
            return "priority"
        return "bulk" if bulk_ok else None

    def _wake(self) -> None:
        while (lane := self._next()) is not None:
            waiters = self._waiting[lane]
            while waiters and waiters[0].done():  # cancelled while waiting
                waiters.popleft()
            future = waiters.popleft()
            self._grant(lane)
            future.set_result(None)

    def _grant(self, lane: Lane) -> None:
        self._busy[lane] += 1
        self._streak = self._streak + 1 if lane == "priority" and self.waiting("bulk") else 0

    @asynccontextmanager
    async def slot(self, lane: Lane) -> AsyncIterator[None]:
        """Hold one slot for `lane` while the block runs."""
        if not self.waiting(lane) and self._can_run(lane) and self._next() in (None, lane):
            self._grant(lane)
        else:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiting[lane].append(future)
            self._wake()
            try:
                await future
            except asyncio.CancelledError:
                if future.done() and not future.cancelled():
                    self._release(lane)  # granted just as we were cancelled
                raise
        try:
            yield
        finally:
            self._release(lane)

    def _release(self, lane: Lane) -> None:
        self._busy[lane] -= 1
        self._wake()

    def wrap(self, lane: Lane, handler: Callable[[A], Awaitable[T]]) -> Callable[[A], Awaitable[T]]:
        """`handler`, run in one of this worker's slots for `lane`."""

        async def in_lane(event: A) -> T:
            async with self.slot(lane):
                return await handler(event)

        return in_lane
