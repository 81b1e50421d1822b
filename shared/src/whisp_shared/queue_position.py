"""Recordings' places in the transcription queue, read from Redis at bounded cost.

Per lane, `XINFO GROUPS` gives the `transcribers` group's last-delivered-id (every entry
after it waits: no worker has taken it yet) and, on Redis 7, its lag (how many); one
`XRANGE (last-delivered-id … end COUNT cap` lists them in order, with each recording's
`duration_s` for the estimate. `XINFO CONSUMERS` gives the workers: the group's consumers
seen within `active_ms` (the bus's `claim_idle_ms`: a worker quiet longer is taken for dead
by its peers too). The processing rate comes from a short capped list that the gateway's
persistence group appends to for every `TranscriptReady` (`record_processing`).

That is two round trips and at most `cap` entries per lane, however long the queue is
(beyond the cap a position says "at least"); and one `QueueSnapshot` places any number of
recordings at once (the gateway's watcher reads one per tick for all it watches).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from pydantic import BaseModel, ValidationError
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from whisp_shared.codec import DATA_FIELD
from whisp_shared.events import TranscriptReady
from whisp_shared.lanes import Lane
from whisp_shared.queue import LANE_STREAMS, QueueEntry, QueuePosition
from whisp_shared.streams import TRANSCRIBERS_GROUP

PROCESSING_KEY: Final = "whisp:queue:processing"
"""The rolling record: the last `PROCESSING_SAMPLES` transcripts' audio and processing
seconds (newest first)."""
PROCESSING_SAMPLES: Final = 50
DEFAULT_CAP: Final = 500
"""Most waiting entries read per lane."""
START: Final = "0-0"


def stream_id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


class ProcessingSample(BaseModel):
    """One transcript's cost, as the rolling record keeps it."""

    audio_s: float
    processing_s: float


class _Waiting(BaseModel):
    """What the estimate reads of a waiting `RecordingCompleted` (the rest is not needed)."""

    duration_s: float | None = None


async def record_processing(redis: Redis, ready: TranscriptReady) -> None:
    """Add one transcript's times to the rolling record (and drop the oldest). A live
    recording's are left out: it never waited in a lane, and its few milliseconds after
    the release would make every upload's estimate look short."""
    if ready.live:
        return
    sample = ProcessingSample(audio_s=ready.audio_duration_s, processing_s=ready.processing_s)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.lpush(PROCESSING_KEY, sample.model_dump_json())
        pipe.ltrim(PROCESSING_KEY, 0, PROCESSING_SAMPLES - 1)
        await pipe.execute()


def processing_rate(samples: Iterable[bytes]) -> float | None:
    """Seconds of processing per second of audio over the samples (a ratio of sums, so the
    long recordings that make a queue long weigh most); None without audio to go by."""
    audio = processing = 0.0
    for raw in samples:
        try:
            sample = ProcessingSample.model_validate_json(raw)
        except ValidationError:
            continue
        audio += sample.audio_s
        processing += sample.processing_s
    return processing / audio if audio > 0 else None


@dataclass(frozen=True)
class LaneQueue:
    """One lane's waiting entries as read: `entries` (id, audio seconds) oldest first."""

    cursor: str
    """The group's last-delivered-id: entries up to it are taken."""
    entries: list[tuple[str, float]]
    complete: bool
    """`entries` holds every waiting entry up to the end that was asked for."""
    lag: int | None = None
    """Every entry waiting in the lane, when Redis says (7.0+, and no deletions)."""
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "_index", {entry_id: n for n, (entry_id, _) in enumerate(self.entries)}
        )

    def index(self, entry_id: str) -> int | None:
        return self._index.get(entry_id)

    def waiting(self) -> tuple[int, float, bool]:
        """The whole lane: how many entries wait, their audio seconds, and whether those
        are lower bounds. With Redis's lag beyond what was read, the seconds are the read
        entries' mean times the lag."""
        seconds = sum(s for _, s in self.entries)
        if self.lag is not None:
            if self.entries and self.lag > len(self.entries):
                seconds *= self.lag / len(self.entries)
            return self.lag, seconds, False
        return len(self.entries), seconds, not self.complete


@dataclass(frozen=True)
class QueueSnapshot:
    """Both lanes, the active workers and the recent rate, read at one moment."""

    lanes: dict[Lane, LaneQueue]
    workers: int
    rate: float | None

    def position(self, recording_id: str, entry: QueueEntry) -> QueuePosition | None:
        """Where `entry` waits; None once a worker took it (or it is gone from the stream)."""
        own = self.lanes[entry.lane]
        if stream_id_key(entry.entry_id) <= stream_id_key(own.cursor):
            return None
        found = own.index(entry.entry_id)
        if found is None:
            if own.complete:
                return None  # trimmed or deleted: it will never be taken
            before, own_s, at_least = own.entries, 0.0, True
        else:
            before, own_s, at_least = own.entries[:found], own.entries[found][1], False
        ahead, work = len(before), sum(seconds for _, seconds in before)
        if entry.lane == "bulk":
            priority = self.lanes["priority"]
            waiting, seconds, more = priority.waiting()
            ahead += waiting
            work += seconds
            at_least = at_least or more
        eta = None
        if self.workers and self.rate is not None:
            eta = round(self.rate * (work / self.workers + own_s), 1)
        return QueuePosition(
            recording_id=recording_id,
            lane=entry.lane,
            position=ahead + 1,
            ahead=ahead,
            at_least=at_least,
            workers=self.workers,
            eta_s=eta,
        )


def _ends(entries: Iterable[QueueEntry]) -> dict[Lane, str]:
    """How far each lane must be read: to the last entry asked about, and the whole
    priority lane when a bulk entry is asked about (every waiting priority entry is ahead)."""
    ends: dict[Lane, str] = {}
    for entry in entries:
        end = ends.get(entry.lane)
        if end is None or stream_id_key(entry.entry_id) > stream_id_key(end):
            ends[entry.lane] = entry.entry_id
    if "bulk" in ends:
        ends["priority"] = "+"
    return ends


def _group(infos: Any) -> tuple[str, int | None]:
    """The transcribers group's last-delivered-id and lag (a stream without it: nothing was
    delivered, and the workers create it at the stream's start)."""
    if isinstance(infos, ResponseError):  # no such stream yet
        return START, None
    if isinstance(infos, Exception):
        raise infos
    for info in infos:
        if info["name"].decode() == TRANSCRIBERS_GROUP:
            lag = info.get("lag")
            return info["last-delivered-id"].decode(), None if lag is None else int(lag)
    return START, None


def _active(consumers: Any, active_ms: int) -> set[str]:
    if isinstance(consumers, ResponseError):  # no stream or no group: no worker yet
        return set()
    if isinstance(consumers, Exception):
        raise consumers
    return {c["name"].decode() for c in consumers if int(c["idle"]) < active_ms}


def _duration(fields: dict[bytes, bytes]) -> float:
    try:
        return _Waiting.model_validate_json(fields.get(DATA_FIELD, b"{}")).duration_s or 0.0
    except ValidationError:
        return 0.0  # a bad entry still waits (its worker dead-letters it quickly)


async def read_queue(
    redis: Redis, entries: Iterable[QueueEntry], *, active_ms: int, cap: int = DEFAULT_CAP
) -> QueueSnapshot:
    """Read what placing `entries` needs (`QueueSnapshot.position`), in two round trips."""
    ends = _ends(entries)
    streams = list(LANE_STREAMS.items())
    async with redis.pipeline(transaction=False) as pipe:
        for _, stream in streams:
            pipe.xinfo_groups(stream)
            pipe.xinfo_consumers(stream, TRANSCRIBERS_GROUP)
        pipe.lrange(PROCESSING_KEY, 0, -1)
        first = await pipe.execute(raise_on_error=False)
    groups = {lane: _group(first[2 * n]) for n, (lane, _) in enumerate(streams)}
    workers = set().union(*(_active(first[2 * n + 1], active_ms) for n in range(len(streams))))
    if isinstance(first[-1], Exception):
        raise first[-1]
    read = [(lane, stream) for lane, stream in streams if lane in ends]
    async with redis.pipeline(transaction=False) as pipe:
        for lane, stream in read:
            pipe.xrange(stream, min=f"({groups[lane][0]}", max=ends[lane], count=cap)
        found = await pipe.execute()
    lanes = {lane: LaneQueue(groups[lane][0], [], complete=True) for lane, _ in streams}
    for (lane, _), rows in zip(read, found, strict=True):
        listed = [(i.decode() if isinstance(i, bytes) else i, _duration(f)) for i, f in rows]
        complete = len(listed) < cap or listed[-1][0] == ends[lane]
        lanes[lane] = LaneQueue(groups[lane][0], listed, complete, groups[lane][1])
    return QueueSnapshot(lanes, len(workers), processing_rate(first[-1]))
