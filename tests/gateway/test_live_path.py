from __future__ import annotations

import asyncio
import json

import httpx
from redis.asyncio import Redis

from tests.gateway.conftest import GatewayFactory
from tests.integration.bus_helpers import recording, transcript_for
from whisp_shared.bus import EventBus
from whisp_shared.config import BusSettings
from whisp_shared.streams import TRANSCRIPTS, USER_EVENTS


async def test_transcript_is_stored_and_streamed(
    gateway: GatewayFactory, bus_settings: BusSettings, redis: Redis
) -> None:
    bus = EventBus(bus_settings)
    await bus.start()
    with gateway() as url:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            me = (await client.get("/api/me")).json()
            assert me["single_user"] is True
            got: list[dict[str, object]] = []

            async def listen() -> None:
                async with client.stream("GET", "/api/events") as response:
                    assert response.status_code == 200
                    async for line in response.aiter_lines():
                        if line.startswith("data:"):
                            got.append(json.loads(line[5:]))
                            return

            task = asyncio.create_task(listen())
            await asyncio.sleep(0.5)
            await bus.publish(
                TRANSCRIPTS, transcript_for(recording("r1", user_id="local"), "hi there")
            )
            await asyncio.wait_for(task, 10)
            assert got[0]["text"] == "hi there"
            stored = (await client.get("/api/transcripts/r1")).json()
            assert stored["text"] == "hi there"
            assert await redis.xlen(USER_EVENTS) == 1
    await bus.stop()
