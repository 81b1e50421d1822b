"""An upload's place in the transcription queue, on the real gateway, audio service and
Redis with no transcription worker running: the 202 answer says it (its `Location` answers
"processing"), and the owner's event stream (only theirs) hears `recording.queued` while it
waits and once a worker takes it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, cast

from redis.asyncio import Redis
from sqlalchemy.exc import OperationalError

from tests.gateway import sse
from tests.gateway.conftest import GatewayFactory, add_users, signed_in
from tests.gateway.services import stack, tone_wav
from tests.gateway.test_sse import connections
from tests.integration.bus_helpers import recording as completed
from whisp_gateway.queue_watch import QueueWatcher
from whisp_shared.bus import EventBus
from whisp_shared.bus_group import ensure_group
from whisp_shared.codec import decode_fields
from whisp_shared.config import BusSettings
from whisp_shared.queue import QueueEntry, RecordingAccepted
from whisp_shared.streams import LIVE, PRIORITY_RECORDINGS, TRANSCRIBERS_GROUP
from whisp_shared.views import CLIENT_EVENT_ADAPTER
from whisp_shared.views import RecordingQueued as Queued

QUEUED = "recording.queued"


async def queued(stream: sse.Stream, n: int) -> list[dict[str, Any]]:
    """The next `n` `recording.queued` events (snapshots of the uploads pass by)."""
    found: list[dict[str, Any]] = []
    while len(found) < n:
        message = await stream.next()
        if message.event == QUEUED:
            assert message.id is None  # live only: never moves the resume point
            found.append(message.payload)
    return found


async def test_uploads_hear_their_place_and_only_their_owner_does(
    gateway: GatewayFactory, bus_settings: BusSettings, redis: Redis, sqlite_url: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    tokens = await add_users(sqlite_url, "alice", "bob")
    clip = {"file": ("clip.wav", tone_wav(tmp_path / "clip.wav", 1.0), "audio/wav")}
    with stack(gateway, bus_settings, tmp_path) as services:
        async with signed_in(services.gateway, tokens, "alice", "bob") as (alice, bob):
            async with sse.events(alice.client) as mine, sse.events(bob.client) as theirs:
                await connections(services.gateway, 2)
                answers = [await alice.client.post("/api/recordings", files=clip) for _ in "ab"]
                assert [a.status_code for a in answers] == [202, 202], answers[-1].text
                first, second = (a.json() for a in answers)
                where = answers[0].headers["Location"]
                assert where == f"/api/transcripts/{first['recording_id']}"
                waiting = (await alice.client.get(where)).json()
                assert (waiting["status"], waiting["text"]) == ("processing", "")
                assert (await bob.client.get(where)).status_code == 404
                heard = await queued(mine, 2)

                # A worker takes the first clip: the second moves up, the first is let go.
                await ensure_group(redis, PRIORITY_RECORDINGS, TRANSCRIBERS_GROUP)
                await redis.xreadgroup(
                    TRANSCRIBERS_GROUP, "worker-1", {PRIORITY_RECORDINGS: ">"}, count=1
                )
                moved = {e["recording_id"]: e["queue"] for e in await queued(mine, 2)}
                await theirs.nothing_more(0.5)
            openapi = (await alice.client.get("/openapi.json")).json()

    assert set(first) == {"recording_id", "duration_s", "queue", "transcript"}
    for n, answer in enumerate((first, second), start=1):
        assert answer["queue"] == {
            "recording_id": answer["recording_id"],
            "lane": "priority",
            "position": n,
            "ahead": n - 1,
            "at_least": False,
            "workers": 0,
            "eta_s": None,
        }
    assert [(e["recording_id"], e["user_id"]) for e in heard] == [
        (first["recording_id"], alice.id),
        (second["recording_id"], alice.id),
    ]
    assert [e["queue"] for e in heard] == [first["queue"], second["queue"]]
    assert moved[first["recording_id"]] is None
    assert moved[second["recording_id"]]["position"] == 1
    assert moved[second["recording_id"]]["ahead"] == 0

    schemas = openapi["components"]["schemas"]
    assert {"$ref": "#/components/schemas/QueuePosition"} in schemas["SubmitResult"]["properties"][
        "queue"
    ]["anyOf"]
    assert set(schemas["QueuePosition"]["required"]) >= {"position", "ahead", "workers"}


async def test_another_users_uploads_count_but_never_show(
    gateway: GatewayFactory, bus_settings: BusSettings, sqlite_url: str, tmp_path: Path
) -> None:
    tokens = await add_users(sqlite_url, "alice", "bob")
    clip = {"file": ("clip.wav", tone_wav(tmp_path / "clip.wav", 1.0), "audio/wav")}
    with stack(gateway, bus_settings, tmp_path) as services:
        async with (
            signed_in(services.gateway, tokens, "alice", "bob") as (alice, bob),
            sse.events(alice.client) as mine,
            sse.events(bob.client) as theirs,
        ):
            await connections(services.gateway, 2)
            alices = (await alice.client.post("/api/recordings", files=clip)).json()
            bobs = (await bob.client.post("/api/recordings", files=clip)).json()
            heard_by_alice = await queued(mine, 1)
            heard_by_bob = await queued(theirs, 1)
            await mine.nothing_more(1.5)  # a tick or more: bob's place is not hers

    assert bobs["queue"]["position"] == 2  # alice's clip counts...
    assert [e["recording_id"] for e in heard_by_alice] == [alices["recording_id"]]
    assert [e["recording_id"] for e in heard_by_bob] == [bobs["recording_id"]]
    assert heard_by_bob[0]["queue"]["ahead"] == 1  # ...as a number only
    assert alices["recording_id"] not in str(heard_by_bob)


async def test_a_database_away_as_it_accepts_defers_the_row_not_the_upload(
    gateway: GatewayFactory, bus_settings: BusSettings, sqlite_url: str, tmp_path: Path
) -> None:
    """The audio is already stored when the gateway notes the row: refusing then would
    make the client send it twice. The recording's event writes the row instead."""
    tokens = await add_users(sqlite_url, "alice")
    clip = {"file": ("clip.wav", tone_wav(tmp_path / "clip.wav", 1.0), "audio/wav")}
    with stack(gateway, bus_settings, tmp_path) as services:
        repo = services.gateway.app.state.repo
        refused: list[str] = []

        async def away(user_id: str, recording_id: str, *_: object) -> None:
            refused.append(recording_id)
            raise OperationalError("INSERT INTO transcripts", {}, ConnectionError("gone"))

        repo.accepted = away
        async with signed_in(services.gateway, tokens, "alice") as (alice,):
            answer = await alice.client.post("/api/recordings", files=clip)
            assert answer.status_code == 202, answer.text
            rid = answer.json()["recording_id"]
            assert refused == [rid]
            for _ in range(100):  # the projection's row, from RecordingCompleted
                found = await alice.client.get(answer.headers["Location"])
                if found.status_code == 200:
                    break
                await asyncio.sleep(0.05)
            assert (found.status_code, found.json()["status"]) == (200, "processing")


async def recording(bus: EventBus, rid: str) -> RecordingAccepted:
    """Queued as the audio service queues a clip, and its answer."""
    entry_id = await bus.publish(PRIORITY_RECORDINGS, completed(rid))
    return RecordingAccepted(recording_id=rid, duration_s=1.0, audio_uri="file:///x.wav",
                             content_type="audio/wav",
                             queue=QueueEntry(lane="priority", entry_id=entry_id))  # fmt: skip


async def test_the_watch_is_bounded_and_lets_go_after_its_timeout(
    publisher: EventBus, redis: Redis
) -> None:
    """At capacity an upload gets its place but no updates; past the timeout a watched one
    is let go, with a last `queue: None` if its owner was told a place."""
    watcher = QueueWatcher(publisher, capacity=1, timeout_s=3600)
    accepted = [await recording(publisher, f"r{n}") for n in range(2)]
    places = [await watcher.accepted("alice", a) for a in accepted]
    assert [p.position if p else None for p in places] == [1, 2]
    assert list(watcher.watched) == ["r0"]

    await watcher.tick()
    await watcher.tick()  # nothing moved: nothing more to say
    watcher.timeout_s = 0
    await watcher.tick()
    assert watcher.watched == {}
    entries = cast(list[tuple[bytes, dict[bytes, bytes]]], await redis.xrange(LIVE))
    live = [decode_fields(fields, CLIENT_EVENT_ADAPTER) for _, fields in entries]
    said = [(e.recording_id, e.queue and e.queue.position) for e in live if isinstance(e, Queued)]
    assert len(said) == len(live)
    assert said == [("r0", 1), ("r0", None)]
