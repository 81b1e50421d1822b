"""A consumer in its own process, for tests that SIGKILL it mid-work.

Usage: python consumer_proc.py REDIS_URL CLAIM_IDLE_MS MODE
MODE "hang": announce each entry on stream `test:started`, then work forever.
"""

from __future__ import annotations

import asyncio
import sys

from tests.integration.bus_helpers import failure_for
from whisp_shared.bus import Consumer, EventBus
from whisp_shared.config import BusSettings
from whisp_shared.events import Event, EventBase
from whisp_shared.streams import RECORDINGS, TRANSCRIBERS_GROUP, TRANSCRIPTS


async def main(redis_url: str, claim_idle_ms: int) -> None:
    bus = EventBus(
        BusSettings(redis_url=redis_url, claim_idle_ms=claim_idle_ms, read_block_ms=100),
        consumer_name="doomed",
    )

    async def hang(event: Event) -> EventBase | None:
        await bus.redis.xadd("test:started", {"recording_id": event.recording_id})
        await asyncio.Event().wait()
        return None

    bus.consume(Consumer(RECORDINGS, TRANSCRIBERS_GROUP, TRANSCRIPTS, hang, failure_for))
    await bus.start()
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
