"""A transcription worker for the scale simulation: the real bus, a sleeping engine.

Usage: python _sim_worker.py REDIS_URL NAME LANE(on|off) SLOTS [BULK_SHARE]

It consumes exactly as the transcription service does — the transcribers' group on the
recordings stream, and with the lane on also the priority stream, both through one
`Lanes` — but its engine sleeps for the processing time measured for the clip's length
(`processing_s`), so 16 workers fit on 2 cores. Each output's `created_at` is when the
engine started, so the bench reads the wait of every recording from the streams.
"""

from __future__ import annotations

import asyncio
import signal
import sys

from whisp_shared.bus import Consumer, EventBus
from whisp_shared.config import BusSettings
from whisp_shared.events import Event, FailureFields, TranscriptionFailed, TranscriptReady
from whisp_shared.lanes import Lane, Lanes
from whisp_shared.streams import PRIORITY_RECORDINGS, RECORDINGS, TRANSCRIBERS_GROUP, TRANSCRIPTS

SHORT_WINDOW_MAX_S = 25.0
READY_KEY = "sim:ready"
"""Each worker adds its name once it consumes (a group lists a consumer only once it read)."""


def processing_s(audio_s: float) -> float:
    """tiny.en int8, 1 thread on this machine (LIBRARIES.md, "Short-window decode"): a
    short-window decode takes 140-200 ms on 4.6-10 s clips; the 30-s path ~0.7 s per window."""
    if audio_s <= SHORT_WINDOW_MAX_S:
        return 0.08 + 0.012 * audio_s
    return 0.7 * -(-audio_s // 30)


async def engine(event: Event) -> TranscriptReady:
    duration = float(getattr(event, "duration_s", None) or 0.0)
    started = TranscriptReady(
        **event.follow_up(),
        text="",
        engine="sleep",
        model="sim",
        audio_duration_s=duration,
        processing_s=processing_s(duration),
        real_time_factor=processing_s(duration) / max(duration, 0.01),
    )
    await asyncio.sleep(started.processing_s)
    return started


def failed(event: Event, failure: FailureFields) -> TranscriptionFailed:
    return TranscriptionFailed(**event.follow_up(), **failure.model_dump())


def consumers(lane_on: bool, slots: int, bulk_share: float = 1.0) -> list[Consumer]:
    if not lane_on:
        return [Consumer(RECORDINGS, TRANSCRIBERS_GROUP, TRANSCRIPTS, engine, failed,
                         max_workers=slots, read_count=slots)]  # fmt: skip
    lanes = Lanes(slots, bulk_share=bulk_share)
    lane_of: dict[str, Lane] = {PRIORITY_RECORDINGS: "priority", RECORDINGS: "bulk"}
    in_hand = {"priority": slots + 1, "bulk": max(1, int(slots * bulk_share))}
    return [
        Consumer(
            stream,
            TRANSCRIBERS_GROUP,
            TRANSCRIPTS,
            lanes.wrap(lane, engine),
            failed,
            max_workers=in_hand[lane],
            read_count=in_hand[lane],
        )
        for stream, lane in lane_of.items()
    ]


async def main(url: str, name: str, lane_on: bool, slots: int, bulk_share: float) -> None:
    bus = EventBus(BusSettings(redis_url=url, read_block_ms=100), consumer_name=name)
    for consumer in consumers(lane_on, slots, bulk_share):
        bus.consume(consumer)
    await bus.start()
    await bus.redis.sadd(READY_KEY, name)  # type: ignore[misc]
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await bus.stop()


if __name__ == "__main__":
    redis_url, worker, lane, n = sys.argv[1:5]
    share = float(sys.argv[5]) if len(sys.argv) > 5 else 1.0
    asyncio.run(main(redis_url, worker, lane == "on", int(n), share))
