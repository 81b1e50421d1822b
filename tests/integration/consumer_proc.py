"""A consumer in its own process, for tests that SIGKILL it mid-work or race it.

Usage: python consumer_proc.py REDIS_URL CLAIM_IDLE_MS [MODE] [READ_COUNT] [STALL_S]
MODE "hang" (default): announce each entry on stream `test:started`, then work forever.
MODE "stall": announce, then block the whole event loop for STALL_S seconds (no heartbeat,
as a process stuck in native code), announce on `test:returned`, and return a transcript.
READ_COUNT: the consumer's batch (`Consumer.read_count`; default the bus's).
"""

from __future__ import annotations

import asyncio
import sys
import time

from tests.integration.bus_helpers import failure_for, transcript_for
from whisp_shared.bus import Consumer, EventBus
from whisp_shared.config import BusSettings
from whisp_shared.events import Event, EventBase
from whisp_shared.streams import RECORDINGS, TRANSCRIBERS_GROUP, TRANSCRIPTS


async def main(
    redis_url: str, claim_idle_ms: int, mode: str, read_count: int | None, stall_s: float
) -> None:
    bus = EventBus(
        BusSettings(redis_url=redis_url, claim_idle_ms=claim_idle_ms, read_block_ms=100),
        consumer_name="doomed",
    )

    async def hang(event: Event) -> EventBase | None:
        await bus.redis.xadd("test:started", {"recording_id": event.recording_id})
        await asyncio.Event().wait()
        return None

    async def stall(event: Event) -> EventBase | None:
        await bus.redis.xadd("test:started", {"recording_id": event.recording_id})
        time.sleep(stall_s)  # blocking on purpose: the loop, and its heartbeat, stop
        await bus.redis.xadd("test:returned", {"recording_id": event.recording_id})
        return transcript_for(event, text="from the stalled worker")

    handler = {"hang": hang, "stall": stall}[mode]
    bus.consume(
        Consumer(
            RECORDINGS,
            TRANSCRIBERS_GROUP,
            TRANSCRIPTS,
            handler,
            failure_for,
            read_count=read_count,
        )
    )
    await bus.start()
    await asyncio.Event().wait()


if __name__ == "__main__":
    args = sys.argv[1:]
    asyncio.run(
        main(
            args[0],
            int(args[1]),
            args[2] if len(args) > 2 else "hang",
            int(args[3]) if len(args) > 3 else None,
            float(args[4]) if len(args) > 4 else 0.0,
        )
    )
