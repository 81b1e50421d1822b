"""Tell owners where their uploads wait: `RecordingQueued` live events while they do.

The gateway that accepted an upload places it in the transcription queue for its answer
(`accepted`) and then watches it, in memory: every `interval_s` one `QueueSnapshot` (a few
Redis calls, whatever the number watched) places every recording it watches, and each one
whose place changed goes to its owner with `EventBus.publish_live` (only that user's pages
get it; it holds counts, never another user's entries). A recording is forgotten once a
worker took it (a last event with `queue: None` says so; its transcript's snapshots follow),
when it left the stream, or after `timeout_s`. The set is bounded (`capacity`): beyond it
an upload still gets its place in the answer, only no updates.

Each replica watches the uploads it accepted; a replica that stops forgets its own (their
pages keep the last place until the transcript's snapshot comes).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from redis.exceptions import RedisError

from whisp_shared.bus import EventBus
from whisp_shared.logs import get_logger
from whisp_shared.queue import QueueEntry, QueuePosition, RecordingAccepted
from whisp_shared.queue_position import DEFAULT_CAP, QueueSnapshot, read_queue
from whisp_shared.views import RecordingQueued

log = get_logger(__name__)


@dataclass
class Watched:
    user_id: str
    entry: QueueEntry
    since: float
    shown: QueuePosition | None = None
    """The place last published (None: none yet)."""


def moved(before: QueuePosition | None, now: QueuePosition) -> bool:
    """Worth telling: the place, the workers or whether there is an estimate changed (the
    estimate alone drifts with every transcript, and is sent along with the rest)."""
    if before is None:
        return True
    return (before.position, before.at_least, before.workers, before.eta_s is None) != (
        now.position,
        now.at_least,
        now.workers,
        now.eta_s is None,
    )


class QueueWatcher:
    """The uploads this gateway accepted that still wait (see the module doc)."""

    def __init__(
        self,
        bus: EventBus,
        *,
        interval_s: float = 1.0,
        timeout_s: float = 1800.0,
        capacity: int = 1000,
        cap: int = DEFAULT_CAP,
    ) -> None:
        self.bus = bus
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.capacity = capacity
        self.cap = cap
        self.watched: dict[str, Watched] = {}

    async def accepted(self, user_id: str, accepted: RecordingAccepted) -> QueuePosition | None:
        """Its place now, watched from here on while it waits; None when Redis cannot say
        (or a worker has it already)."""
        entry = accepted.queue
        if entry is None:
            return None
        try:
            snapshot = await self._read([entry])
        except RedisError as exc:
            log.warning("queue position unknown", error=str(exc))
            return None
        position = snapshot.position(accepted.recording_id, entry)
        if position is not None and len(self.watched) < self.capacity:
            self.watched[accepted.recording_id] = Watched(user_id, entry, time.monotonic())
        return position

    async def run(self) -> None:
        """Tick until cancelled; a failing tick (Redis restarting) is logged, never fatal."""
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.tick()
            except Exception as exc:  # keep watching: the next tick may work
                log.warning("queue watch skipped a tick", error=str(exc))

    async def tick(self) -> None:
        """Place every watched recording once, tell its owner what changed, forget those
        that wait no more."""
        if not self.watched:
            return
        snapshot = await self._read([w.entry for w in self.watched.values()])
        now = time.monotonic()
        for recording_id, watched in list(self.watched.items()):
            position = snapshot.position(recording_id, watched.entry)
            if position is None or now - watched.since > self.timeout_s:
                if watched.shown is not None:  # a failed publish is tried again next tick
                    await self._publish(recording_id, watched, None)
                del self.watched[recording_id]
            elif moved(watched.shown, position):
                await self._publish(recording_id, watched, position)
                watched.shown = position

    async def _read(self, entries: list[QueueEntry]) -> QueueSnapshot:
        return await read_queue(
            self.bus.redis, entries, active_ms=self.bus.settings.claim_idle_ms, cap=self.cap
        )

    async def _publish(
        self, recording_id: str, watched: Watched, position: QueuePosition | None
    ) -> None:
        event = RecordingQueued(recording_id=recording_id, user_id=watched.user_id, queue=position)
        await self.bus.publish_live(event)
