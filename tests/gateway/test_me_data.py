"""Everything of mine: exported (settings, transcripts with raw and final text and answers,
agent sessions), deleted from every store (the gateway's tables, Redis, the audio folder,
the agent service), and let go by each user's own retention (a clock the test controls)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from pydantic import TypeAdapter
from redis.asyncio import Redis
from sqlalchemy import create_engine, text

from tests.gateway.conftest import GatewayFactory, Signed, add_users, signed_in
from tests.gateway.factories import answered, at, recorded, transcribed
from tests.gateway.services import Stack, stack, tone_wav
from tests.integration.bus_helpers import wait_for
from whisp_gateway.clients import AudioService
from whisp_gateway.my_data import ExportLine
from whisp_gateway.repository import SqlRepository
from whisp_gateway.retention import RetentionSweeper
from whisp_shared.bus import EventBus
from whisp_shared.config import BusSettings
from whisp_shared.streams import RECORDINGS, RESPONSES, TRANSCRIPTS, USER_EVENTS

EXPORT_LINE: TypeAdapter[ExportLine] = TypeAdapter(ExportLine)
SETTINGS = {"vocabulary": ["Kestrel"], "replacements": [{"spoken": "k8s", "written": "Kubernetes"}]}


async def dictate(person: Signed, services: Stack, wav: bytes, n: int) -> list[str]:
    """`n` uploads (audio at the audio service, rows at the gateway); their ids."""
    ids = []
    for _ in range(n):
        response = await person.client.post(
            "/api/recordings", files={"file": ("clip.wav", wav, "audio/wav")}
        )
        assert response.status_code == 202, response.text
        ids.append(response.json()["recording_id"])
    return ids


async def history(person: Signed, count: int) -> list[dict[str, Any]]:
    async def stored() -> bool:
        page = (await person.client.get("/api/transcripts")).json()
        return len(page["items"]) == count

    await wait_for(stored)
    return list((await person.client.get("/api/transcripts")).json()["items"])


async def fill(publisher: EventBus, person: Signed, services: Stack, wav: bytes) -> str:
    """A user with settings, a transcribed and answered recording (raw text kept), an
    upload with its audio, an agent session and a rate-limit bucket."""
    await person.client.put("/api/me/settings", json=SETTINGS)
    rid = f"{person.id[:6]}-rec"
    await publisher.publish(RECORDINGS, recorded(rid, person.id, created_at=at(0)))
    ready = transcribed(rid, "we run Kubernetes", person.id, agent_id="helper")
    await publisher.publish(TRANSCRIPTS, ready.model_copy(update={"raw_text": "we run k8s"}))
    await publisher.publish(RESPONSES, answered(rid, "Noted.", person.id, agent_id="helper"))
    await dictate(person, services, wav, 1)
    chat = await person.client.post(
        "/api/agents/chat", json={"agent": "helper", "input": "remember me", "session_id": "s1"}
    )
    assert chat.status_code == 200, chat.text
    await history(person, 2)
    return rid


def export_lines(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/x-ndjson"
    lines = [json.loads(line) for line in response.text.splitlines()]
    for line in lines:  # each line is one of the documented shapes
        EXPORT_LINE.validate_python(line)
    return lines


async def test_export_holds_everything_of_mine_and_nothing_of_theirs(
    gateway: GatewayFactory,
    bus_settings: BusSettings,
    publisher: EventBus,
    sqlite_url: str,
    tmp_path: Path,
) -> None:
    tokens = await add_users(sqlite_url, "alice", "bob")
    wav = tone_wav(tmp_path / "tone.wav")
    with stack(gateway, bus_settings, tmp_path) as services:
        async with signed_in(services.gateway, tokens, "alice", "bob") as (alice, bob):
            rid = await fill(publisher, alice, services, wav)
            response = await alice.client.get("/api/me/export")
            lines = export_lines(response)
            assert "attachment" in response.headers["content-disposition"]
            bobs = export_lines(await bob.client.get("/api/me/export"))

    kinds = [line["type"] for line in lines]
    assert kinds[:2] == ["export", "settings"]
    assert kinds[-1] == "end"
    assert (lines[0]["user"]["id"], lines[0]["user"]["name"]) == (alice.id, "alice")
    assert lines[1]["settings"]["vocabulary"] == ["Kestrel"]
    transcripts = {
        t["transcript"]["recording_id"]: t["transcript"] for t in lines if t["type"] == "transcript"
    }
    assert len(transcripts) == 2
    mine = transcripts[rid]
    assert (mine["text"], mine["raw_text"]) == ("we run Kubernetes", "we run k8s")
    assert [a["output"] for a in mine["answers"]] == ["Noted."]
    sessions = [line["data"] for line in lines if line["type"] == "agent_session"]
    assert [s["session_id"] for s in sessions] == ["s1"]
    assert "remember me" in json.dumps(sessions)
    assert any(line["type"] == "agent_usage" for line in lines)
    end = lines[-1]
    assert end["transcripts"] == 2
    assert end["agent_sessions"] == 1
    # Bob's export: his (empty) history, nothing of alice's.
    assert [line["type"] for line in bobs] == ["export", "settings", "end"]
    assert alice.id not in json.dumps(bobs)
    assert "Kubernetes" not in json.dumps(bobs)


def rows_of(database_url: str, user_id: str) -> dict[str, int]:
    """Rows naming the user in every table of the gateway's database."""
    engine = create_engine(database_url.replace("+aiosqlite", ""))
    counts = {}
    with engine.connect() as conn:
        for table, column in (
            ("transcripts", "user_id"),
            ("answers", "user_id"),
            ("user_settings", "user_id"),
            ("users", "id"),
        ):
            query = text(f"SELECT count(*) FROM {table} WHERE {column} = :u")
            counts[table] = conn.execute(query, {"u": user_id}).scalar_one()
    engine.dispose()
    return counts


async def redis_traces(redis: Redis, user_id: str) -> list[str]:
    """Keys naming the user, and user-events entries of theirs."""
    keys = [k.decode() async for k in redis.scan_iter(match=f"*{user_id}*")]
    events = [
        entry_id.decode()
        for entry_id, fields in await redis.xrange(USER_EVENTS)
        if json.loads(fields[b"data"])["user_id"] == user_id
    ]
    return keys + events


async def test_delete_leaves_nothing_of_mine_and_everything_of_theirs(
    gateway: GatewayFactory,
    bus_settings: BusSettings,
    publisher: EventBus,
    redis: Redis,
    sqlite_url: str,
    tmp_path: Path,
) -> None:
    tokens = await add_users(sqlite_url, "alice", "bob")
    wav = tone_wav(tmp_path / "tone.wav")
    with stack(gateway, bus_settings, tmp_path) as services:
        async with signed_in(services.gateway, tokens, "alice", "bob") as (alice, bob):
            for person in (alice, bob):
                await fill(publisher, person, services, wav)
            assert sorted(services.audio_owners()) == sorted([alice.id, bob.id])
            assert await redis_traces(redis, alice.id)  # a bucket, stored snapshots

            # Irreversible, so it must be confirmed with one's own name.
            for params in ({}, {"confirm": "bob"}, {"confirm": "ALICE"}):
                refused = await alice.client.delete("/api/me/data", params=params)
                assert refused.status_code == 422, refused.text
                assert refused.json()["code"] == "confirmation_required"
            assert len((await alice.client.get("/api/transcripts")).json()["items"]) == 2

            done = await alice.client.delete("/api/me/data", params={"confirm": "alice"})
            assert done.status_code == 200, done.text
            counts = done.json()
            assert counts["gateway"] == {"transcripts": 2, "answers": 1, "settings": 1}
            assert counts["audio"]["deleted"] == 1
            assert counts["agents"]["sessions"] == 1
            assert counts["redis"]["keys"] >= 1
            assert counts["redis"]["events"] >= 2

            # Nothing of alice's is left in any store...
            assert rows_of(sqlite_url, alice.id) == {
                "transcripts": 0, "answers": 0, "user_settings": 0, "users": 1,
            }  # fmt: skip
            assert await redis_traces(redis, alice.id) == []
            assert alice.id not in services.audio_owners()
            exported = export_lines(await alice.client.get("/api/me/export"))
            assert [line["type"] for line in exported] == ["export", "settings", "end"]
            assert (await alice.client.get("/api/me/settings")).json()["vocabulary"] == []
            # ...her login still works (she can start again with nothing)...
            assert (await alice.client.get("/api/me")).status_code == 200
            # ...and bob has all of his.
            assert rows_of(sqlite_url, bob.id) == {
                "transcripts": 2, "answers": 1, "user_settings": 1, "users": 1,
            }  # fmt: skip
            assert bob.id in services.audio_owners()
            bobs = export_lines(await bob.client.get("/api/me/export"))
            assert bobs[-1]["agent_sessions"] == 1
            assert await redis_traces(redis, bob.id)

            again = await alice.client.delete("/api/me/data", params={"confirm": "alice"})
            assert again.status_code == 200
            assert again.json()["gateway"] == {"transcripts": 0, "answers": 0, "settings": 0}
            assert again.json()["audio"]["deleted"] == 0


async def test_delete_keeps_everything_while_a_service_is_away(
    gateway: GatewayFactory, sqlite_url: str, publisher: EventBus
) -> None:
    tokens = await add_users(sqlite_url, "alice")
    with gateway(audio_service_url="http://127.0.0.1:9") as url:
        async with signed_in(url, tokens, "alice") as (alice,):
            await alice.client.put("/api/me/settings", json=SETTINGS)
            await publisher.publish(TRANSCRIPTS, transcribed("r1", "keep me", alice.id))
            await history(alice, 1)
            away = await alice.client.delete("/api/me/data", params={"confirm": "alice"})
            assert away.status_code == 503
            assert away.json()["code"] == "audio_unavailable"
            assert away.json()["retryable"] is True
            assert len(await history(alice, 1)) == 1
            assert (await alice.client.get("/api/me/settings")).json()["vocabulary"] == ["Kestrel"]


async def test_retention_is_per_user_and_follows_the_clock(
    gateway: GatewayFactory,
    bus_settings: BusSettings,
    publisher: EventBus,
    sqlite_url: str,
    tmp_path: Path,
) -> None:
    """Alice keeps transcripts 30 days, bob audio 40 days, carol everything: the sweep at
    +10 days deletes nothing, at +45 days alice's transcripts with their audio and bob's
    audio (his transcripts stay), and nothing of carol's."""
    tokens = await add_users(sqlite_url, "alice", "bob", "carol")
    wav = tone_wav(tmp_path / "tone.wav")
    with stack(gateway, bus_settings, tmp_path) as services:
        async with signed_in(services.gateway, tokens, "alice", "bob", "carol") as people:
            alice, bob, carol = people
            await alice.client.patch("/api/me/settings", json={"transcript_retention_days": 30})
            await bob.client.patch("/api/me/settings", json={"audio_retention_days": 40})
            for person in people:
                await dictate(person, services, wav, 2)
                await history(person, 2)
            await publisher.publish(
                TRANSCRIPTS,
                transcribed(
                    "ancient",
                    "from long ago",
                    alice.id,
                    created_at=datetime(2020, 1, 1, tzinfo=UTC),
                ),
            )
            await history(alice, 3)

            now = datetime.now(UTC)
            clock = [now + timedelta(days=10)]
            repo = SqlRepository(sqlite_url)
            audio = AudioService(services.audio_url, None)
            sweeper = RetentionSweeper(repo, audio, interval_s=3600, clock=lambda: clock[0])
            try:
                early = await sweeper.sweep()
                assert (early.transcripts, early.audio) == (1, 0)  # only the 2020 one
                assert len(await history(alice, 2)) == 2
                assert sorted(services.audio_owners()).count(alice.id) == 2

                clock[0] = now + timedelta(days=45)
                late = await sweeper.sweep()
                assert (late.users, late.transcripts, late.audio) == (2, 2, 4)
                assert late.failed_users == []
                assert await history(alice, 0) == []
                assert len(await history(bob, 2)) == 2  # his audio went, his words stay
                assert len(await history(carol, 2)) == 2
                owners = services.audio_owners()
                assert alice.id not in owners
                assert bob.id not in owners
                assert owners.count(carol.id) == 2
                assert (await sweeper.sweep()).transcripts == 0  # nothing more to do
            finally:
                await audio.aclose()
                await repo.close()
