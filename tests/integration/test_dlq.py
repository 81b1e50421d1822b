"""`whisp dlq` against a real Redis: a recording whose transcription failed for good is
listed, shown, replayed once the cause is fixed — and then completes, downstream included —
or dropped; nothing that already succeeded runs twice."""

from __future__ import annotations

import asyncio
import json
import sys
from collections import Counter
from pathlib import Path

import pytest
from redis.asyncio import Redis

from tests.integration.bus_helpers import (
    consumer,
    failure_for,
    recording,
    stream_events,
    transcript_for,
    wait_for,
)
from whisp_shared.bus import Consumer
from whisp_shared.config import BusSettings
from whisp_shared.errors import PermanentError
from whisp_shared.events import Event, EventBase
from whisp_shared.streams import RECORDINGS, RESPONSES, TRANSCRIPTS, dead_letter_stream

WHISP = str(Path(sys.executable).with_name("whisp"))


class Engine:
    """Fails for good while `broken` (a model that is not installed), then works."""

    def __init__(self) -> None:
        self.broken = True
        self.calls: Counter[str] = Counter()

    async def __call__(self, event: Event) -> EventBase:
        self.calls[event.recording_id] += 1
        if self.broken:
            raise PermanentError("the model is not installed", code="model_unavailable")
        return transcript_for(event, text=f"text of {event.recording_id}")


class Store:
    """A downstream group on the transcripts (as the gateway stores them); fails for good on
    the recordings named in `refuse`."""

    def __init__(self, group: str, refuse: set[str] | None = None) -> None:
        self.group = group
        self.refuse = refuse or set()
        self.seen: list[tuple[str, str]] = []

    async def __call__(self, event: Event) -> None:
        if event.recording_id in self.refuse:
            raise PermanentError("the database refused it", code="store_failed")
        self.seen.append((event.recording_id, event.type))

    def consumer(self) -> Consumer:
        return Consumer(TRANSCRIPTS, self.group, RESPONSES, self, failure_for)


async def whisp(redis_url: str, *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        WHISP,
        "dlq",
        *args,
        "--redis-url",
        redis_url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()


async def dead(redis: Redis, stream: str = RECORDINGS) -> int:
    return int(await redis.xlen(dead_letter_stream(stream)))


async def test_replay_after_the_fix_completes_the_recording_downstream_too(
    redis: Redis, bus_settings: BusSettings, make_bus
) -> None:
    engine, store = Engine(), Store("store")
    await make_bus("worker", consumer(engine)).start()
    await make_bus("store", store.consumer()).start()
    publisher = make_bus("pub")
    await publisher.connect()
    await publisher.publish(RECORDINGS, recording("r1", "alice"))

    async def failed_and_stored() -> bool:
        return await dead(redis) == 1 and ("r1", "transcription.failed") in store.seen

    await wait_for(failed_and_stored)
    code, out = await whisp(bus_settings.redis_url, "list", "--json")
    assert code == 0, out
    [letter] = [json.loads(line) for line in out.splitlines()]
    assert letter["stream"] == RECORDINGS
    assert letter["group"] == "transcribers"
    assert letter["recording_id"] == "r1"
    assert letter["user_id"] == "alice"
    assert letter["error"].startswith("model_unavailable: the model is not installed")
    code, out = await whisp(bus_settings.redis_url, "show", letter["id"])
    assert code == 0, out
    assert json.loads(out)["data"]["audio_uri"] == "file:///tmp/r1.wav"

    engine.broken = False
    code, out = await whisp(bus_settings.redis_url, "replay", letter["id"])
    assert code == 0, out
    assert "replayed" in out

    async def stored_done() -> bool:
        return ("r1", "transcript.ready") in store.seen

    await wait_for(stored_done)
    assert engine.calls["r1"] == 2  # the first try and the replay
    assert await dead(redis) == 0
    assert [e.type for e in await stream_events(redis, TRANSCRIPTS)] == [
        "transcription.failed",
        "transcript.ready",
    ]
    await asyncio.sleep(0.3)  # nothing else arrives: one result per try
    assert store.seen == [("r1", "transcription.failed"), ("r1", "transcript.ready")]

    code, out = await whisp(bus_settings.redis_url, "replay", letter["id"])
    assert code == 1
    assert "No dead letter" in out


async def test_replaying_a_downstream_failure_reruns_only_that_group(
    redis: Redis, bus_settings: BusSettings, make_bus
) -> None:
    engine = Engine()
    engine.broken = False
    flaky, other = Store("flaky", refuse={"r2"}), Store("other")
    for name, c in (("w", consumer(engine)), ("f", flaky.consumer()), ("o", other.consumer())):
        await make_bus(name, c).start()
    publisher = make_bus("pub")
    await publisher.connect()
    await publisher.publish(RECORDINGS, recording("r2", "bob"))

    async def flaky_gave_up() -> bool:
        return await dead(redis, TRANSCRIPTS) == 1 and bool(other.seen)

    await wait_for(flaky_gave_up)
    code, out = await whisp(bus_settings.redis_url, "list", "--json")
    [letter] = [json.loads(line) for line in out.splitlines()]
    assert (letter["stream"], letter["group"]) == (TRANSCRIPTS, "flaky")

    flaky.refuse.clear()
    code, out = await whisp(bus_settings.redis_url, "replay", letter["id"])
    assert code == 0, out

    async def flaky_stored() -> bool:
        return bool(flaky.seen)

    await wait_for(flaky_stored)
    await asyncio.sleep(0.3)
    assert flaky.seen == [("r2", "transcript.ready")]
    assert other.seen == [("r2", "transcript.ready")]  # saw the replayed entry, skipped it
    assert engine.calls["r2"] == 1


async def test_drop_forgets_a_dead_letter_and_unknown_ids_are_refused(
    redis: Redis, bus_settings: BusSettings, make_bus
) -> None:
    await make_bus("worker", consumer(Engine())).start()
    publisher = make_bus("pub")
    await publisher.connect()
    await publisher.publish(RECORDINGS, recording("r3", "carol"))

    async def one_dead() -> bool:
        return await dead(redis) == 1

    await wait_for(one_dead)
    code, out = await whisp(bus_settings.redis_url, "list")
    assert code == 0
    assert "r3" in out
    [entry_id] = [eid.decode() for eid, _ in await redis.xrange(dead_letter_stream(RECORDINGS))]
    code, out = await whisp(bus_settings.redis_url, "drop", "--yes", entry_id)
    assert code == 0, out
    assert await dead(redis) == 0
    code, out = await whisp(bus_settings.redis_url, "list")
    assert "No dead letters" in out
    code, out = await whisp(bus_settings.redis_url, "drop", "--yes", "1-0")
    assert code == 1
    assert "No dead letter 1-0" in out


@pytest.mark.parametrize("stream", ["nonsense", "whisp:live"])
async def test_an_unknown_stream_is_refused(bus_settings: BusSettings, stream: str) -> None:
    code, out = await whisp(bus_settings.redis_url, "list", "--stream", stream)
    assert code == 2
    assert "unknown stream" in out
