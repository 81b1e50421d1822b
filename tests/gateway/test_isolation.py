"""Per-user isolation: bob reaches none of alice's data by any route, even with her ids."""

from __future__ import annotations

import json

import httpx
from redis.asyncio import Redis

from tests.gateway import sse
from tests.gateway.conftest import GatewayFactory, add_users, signed_in
from tests.gateway.factories import answered, at, recorded, transcribed
from tests.gateway.test_sse import connections
from tests.integration.bus_helpers import wait_for
from whisp_shared.bus import EventBus
from whisp_shared.streams import RECORDINGS, RESPONSES, TRANSCRIPTS, USER_EVENTS

FORMATS = ("jsonl", "csv", "txt", "srt", "vtt")


async def publish_history(bus: EventBus, alice: str, bob: str) -> None:
    for n, (rid, user, text) in enumerate(
        [
            ("alice-rec-1", alice, "alice zebra secret one"),
            ("alice-rec-2", alice, "alice zebra secret two"),
            ("bob-rec-1", bob, "bob plain notes"),
        ]
    ):
        await bus.publish(RECORDINGS, recorded(rid, user, created_at=at(n), agent_id="summarizer"))
        await bus.publish(TRANSCRIPTS, transcribed(rid, text, user, agent_id="summarizer"))
    await bus.publish(RESPONSES, answered("alice-rec-1", "zebra summary", alice))


async def test_bob_cannot_reach_alice_by_any_route(
    gateway: GatewayFactory, sqlite_url: str, publisher: EventBus, redis: Redis
) -> None:
    tokens = await add_users(sqlite_url, "alice", "bob")
    with gateway() as url:
        async with signed_in(url, tokens, "alice", "bob") as (a, b):
            alice, alice_id, bob, bob_id = a.client, a.id, b.client, b.id

            # Live streams: each sees only their own events.
            async with sse.events(alice) as alice_stream, sse.events(bob) as bob_stream:
                await connections(url, 2)
                await publish_history(publisher, alice_id, bob_id)

                async def forwarded() -> bool:
                    return await redis.xlen(USER_EVENTS) == 7

                await wait_for(forwarded)
                mine = await alice_stream.take(5)
                theirs = await bob_stream.take(2)
                await bob_stream.nothing_more(0.5)
            assert {m.payload["user_id"] for m in mine} == {alice_id}
            assert {m.payload["user_id"] for m in theirs} == {bob_id}
            assert {m.payload["recording_id"] for m in theirs} == {"bob-rec-1"}
            # Nor from the replay, whatever position bob asks for.
            async with sse.events(bob, last_event_id="0-0") as replayed:
                assert {m.payload["recording_id"] for m in await replayed.take(2)} == {"bob-rec-1"}
                await replayed.nothing_more(0.3)

            # Guessed ids: bob's 404 for alice's recording is the 404 for one that never was.
            for rid in ("alice-rec-1", "alice-rec-2"):
                got = await bob.get(f"/api/transcripts/{rid}")
                never = await bob.get(f"/api/transcripts/{rid}-nope")
                assert got.status_code == never.status_code == 404
                assert got.json() == {
                    **never.json(),
                    "message": never.json()["message"].replace(f"{rid}-nope", rid),
                }
                deleted = await bob.delete(f"/api/transcripts/{rid}")
                assert deleted.status_code == 404
                assert deleted.json()["code"] == "not_found"
            assert (await alice.get("/api/transcripts/alice-rec-1")).status_code == 200

            # Listing, search, filters and paging only ever walk bob's own history.
            listing = (await bob.get("/api/transcripts")).json()
            assert [t["recording_id"] for t in listing["items"]] == ["bob-rec-1"]
            assert (await bob.get("/api/transcripts", params={"q": "zebra"})).json()["items"] == []
            filtered = await bob.get("/api/transcripts", params={"agent_id": "summarizer"})
            assert [t["recording_id"] for t in filtered.json()["items"]] == ["bob-rec-1"]
            alice_page = (await alice.get("/api/transcripts", params={"limit": 1})).json()
            assert alice_page["next_cursor"]
            with_her_cursor = await bob.get(
                "/api/transcripts", params={"cursor": alice_page["next_cursor"]}
            )
            assert "alice" not in with_her_cursor.text
            # Parameters and headers naming someone else change nothing.
            spoofed = await bob.get(
                "/api/transcripts",
                params={"user_id": alice_id, "user": alice_id},
                headers={"X-Whisp-User": alice_id},
            )
            assert [t["recording_id"] for t in spoofed.json()["items"]] == ["bob-rec-1"]
            me = await bob.get("/api/me", headers={"X-Whisp-User": alice_id})
            assert me.json()["user"]["id"] == bob_id

            for fmt in FORMATS:
                export = await bob.get("/api/transcripts/export", params={"format": fmt})
                assert export.status_code == 200
                assert "zebra" not in export.text, fmt
                assert "alice" not in export.text, fmt
                assert "bob plain notes" in export.text, fmt
                searched = await bob.get(
                    "/api/transcripts/export", params={"format": fmt, "q": "zebra"}
                )
                assert "zebra" not in searched.text

            # Alice sees everything of hers (the answer too).
            first = (await alice.get("/api/transcripts/alice-rec-1")).json()
            assert [a["output"] for a in first["answers"]] == ["zebra summary"]
            assert "zebra" in (await alice.get("/api/transcripts/export")).text


async def test_delete_keeps_everything_when_the_audio_service_is_down(
    gateway: GatewayFactory, publisher: EventBus, redis: Redis
) -> None:
    """The audio goes first: a 503 there leaves the transcript for a retry, not an orphan."""
    with gateway(audio_service_url="http://127.0.0.1:9") as url:  # discard port: refused
        await publisher.publish(TRANSCRIPTS, transcribed("r1", "keep me", "local"))

        async def stored() -> bool:
            return await redis.xlen(USER_EVENTS) == 1

        await wait_for(stored)
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            response = await client.delete("/api/transcripts/r1")
            assert response.status_code == 503
            assert response.json()["code"] == "audio_unavailable"
            kept = await client.get("/api/transcripts/r1")
            assert kept.status_code == 200
            assert json.loads(kept.text)["text"] == "keep me"
