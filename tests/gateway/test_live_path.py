from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
from redis.asyncio import Redis

from tests.gateway import sse
from tests.gateway.conftest import GatewayFactory
from tests.gateway.factories import answered
from tests.gateway.test_sse import connections
from tests.integration.bus_helpers import recording, transcript_for
from whisp_shared.bus import EventBus
from whisp_shared.config import BusSettings
from whisp_shared.streams import RECORDINGS, RESPONSES, TRANSCRIPTS, USER_EVENTS
from whisp_shared.views import Transcript, TranscriptUpdated


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
            assert got[0]["type"] == "transcript.updated"
            assert got[0]["transcript"]["text"] == "hi there"
            assert got[0]["transcript"]["status"] == "done"
            stored = (await client.get("/api/transcripts/r1")).json()
            assert stored["text"] == "hi there"
            assert await redis.xlen(USER_EVENTS) == 1
    await bus.stop()


SNAPSHOT_KEYS = set(TranscriptUpdated.model_fields)
TRANSCRIPT_KEYS = set(Transcript.model_fields)


async def test_the_event_stream_carries_snapshots_and_nothing_internal(
    gateway: GatewayFactory, publisher: EventBus, tmp_path: Path
) -> None:
    """A recording's whole life on /api/events: stored (processing), transcribed, answered —
    each a snapshot of what the owner's history holds; never the audio URI, a file path, or
    a field of the services' own events."""
    audio_path = tmp_path / "data" / "audio" / "local" / "r9" / "audio.wav"
    made = recording("r9", user_id="local").model_copy(
        update={"audio_uri": audio_path.as_uri(), "agent_id": "summarizer"}
    )
    with gateway() as url:
        async with (
            httpx.AsyncClient(base_url=url, timeout=10) as client,
            sse.events(client) as stream,
        ):
            await connections(url, 1)
            await publisher.publish(RECORDINGS, made)
            first = await stream.next()
            await publisher.publish(TRANSCRIPTS, transcript_for(made, "buy milk"))
            second = await stream.next()
            await publisher.publish(RESPONSES, answered("r9", "Milk.", "local"))
            third = await stream.next()
            await stream.nothing_more(0.3)
    messages = [first, second, third]
    assert [m.event for m in messages] == ["transcript.updated"] * 3
    assert [m.payload["transcript"]["status"] for m in messages] == ["processing", "done", "done"]
    assert second.payload["transcript"]["text"] == "buy milk"
    assert [a["output"] for a in third.payload["transcript"]["answers"]] == ["Milk."]
    for message in messages:
        raw = message.data or ""
        assert "audio_uri" not in raw and "file://" not in raw and str(tmp_path) not in raw
        assert set(message.payload) <= SNAPSHOT_KEYS
        assert set(message.payload["transcript"]) <= TRANSCRIPT_KEYS
        assert message.payload["user_id"] == "local"
