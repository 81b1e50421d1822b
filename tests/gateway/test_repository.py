"""The transcript repository: every test runs on SQLite and on PostgreSQL (`repo` fixture)."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from tests.gateway.factories import (
    T0,
    agent_failed,
    answered,
    at,
    failed,
    recorded,
    segments_for,
    transcribed,
)
from whisp_gateway.repository import SqlRepository
from whisp_gateway.repository.models import TranscriptQuery
from whisp_gateway.repository.tables import answers, transcripts, users
from whisp_shared.events import Event
from whisp_shared.options import AgentRoute
from whisp_shared.views import Transcript


def comparable(item: Transcript | None) -> dict[str, Any]:
    """A transcript without the bookkeeping that may differ between equal histories."""
    assert item is not None
    data = item.model_dump(mode="json", exclude={"updated_at", "recording_id"})
    for answer in data["answers"]:
        answer.pop("event_id")
    return data


async def everything(repo: SqlRepository, user_id: str, **filters: Any) -> list[Transcript]:
    return [item async for item in repo.iterate(user_id, TranscriptQuery(**filters))]


async def ids(repo: SqlRepository, user_id: str, **filters: Any) -> list[str]:
    return [t.recording_id for t in await everything(repo, user_id, **filters)]


# ---- events -------------------------------------------------------------------------------


async def test_every_event_type_is_recorded(repo: SqlRepository) -> None:
    await repo.apply(recorded("r1", agent_id="summarizer", session_id="s1"))
    pending = await repo.get("alice", "r1")
    assert pending is not None
    assert (pending.status, pending.text, pending.agent_id) == ("processing", "", "summarizer")
    assert pending.created_at == T0
    assert pending.session_id == "s1"

    ready = transcribed("r1", "Hello there general Kenobi", agent_id="summarizer")
    await repo.apply(ready)
    done = await repo.get("alice", "r1")
    assert done is not None
    assert done.status == "done"
    assert done.text == "Hello there general Kenobi"
    assert done.segments == ready.segments  # words and all
    assert done.segments[0].words is not None
    assert (done.language, done.engine, done.model) == ("en", "faster-whisper", "tiny.en")
    assert done.duration_s == ready.audio_duration_s
    assert done.processing_s == 0.25
    assert done.created_at == T0  # when it was recorded, not when it was transcribed

    await repo.apply(answered("r1", "A greeting."))
    await repo.apply(agent_failed("r1", agent_id="translator"))
    with_answers = await repo.get("alice", "r1")
    assert with_answers is not None
    assert [(a.status, a.agent_id, a.output) for a in with_answers.answers] == [
        ("done", "summarizer", "A greeting."),
        ("failed", "translator", ""),
    ]
    assert with_answers.answers[0].usage.total_tokens == 15
    assert with_answers.answers[1].error_code == "agent_unavailable"

    await repo.apply(recorded("r2"))
    await repo.apply(failed("r2"))
    broken = await repo.get("alice", "r2")
    assert broken is not None
    assert (broken.status, broken.error_code) == ("failed", "undecodable_audio")
    assert broken.error_message == "the audio could not be decoded"


async def test_order_does_not_matter(repo: SqlRepository) -> None:
    """Three streams, no order between them: every arrival order gives the same row."""

    def events(rid: str) -> list[Any]:
        return [
            recorded(rid, agent_id="summarizer", pipeline="p1", session_id="s1", duration_s=9.0),
            transcribed(rid, "order independent words", agent_id="summarizer", pipeline="p1",
                        session_id="s1"),
            answered(rid, "summary", event_id=f"ar-{rid}"),
        ]  # fmt: skip

    results = []
    for n, order in enumerate(itertools.permutations(range(3))):
        rid = f"perm{n}"
        batch = events(rid)
        for i in order:
            await repo.apply(batch[i])
        results.append(comparable(await repo.get("alice", rid)))
    assert all(r == results[0] for r in results[1:]), results
    assert results[0]["created_at"].startswith(T0.isoformat()[:19])
    assert results[0]["agent_id"] == "summarizer"
    assert results[0]["status"] == "done"
    # The agent filter finds it whichever event came first.
    assert len(await ids(repo, "alice", agent_id="summarizer")) == 6


async def test_transcript_before_recording(repo: SqlRepository) -> None:
    await repo.apply(transcribed("r1", "early bird", agent_id="summarizer", session_id="s9"))
    early = await repo.get("alice", "r1")
    assert early is not None
    assert (early.status, early.agent_id, early.session_id) == ("done", "summarizer", "s9")
    await repo.apply(recorded("r1", agent_id="summarizer", session_id="s9", duration_s=1.0))
    late = await repo.get("alice", "r1")
    assert late is not None
    assert late.status == "done"  # a late RecordingCompleted never turns it back
    assert late.text == "early bird"
    assert late.created_at == T0
    assert late.duration_s == early.duration_s  # the transcriber measured it


async def test_an_accepted_upload_is_processing_until_its_events_fill_it_in(
    repo: SqlRepository,
) -> None:
    """The gateway writes the row when it accepts an upload (its `Location` answers at
    once); the recording's own event still wins on time, an outcome on everything else,
    and neither user sees the other's."""
    route = AgentRoute(agent_id="summarizer", session_id="s1")
    await repo.accepted("alice", "r1", 2.5, route)
    await repo.accepted("alice", "r1", 9.9, AgentRoute())  # a second note changes nothing
    early = await repo.get("alice", "r1")
    assert early is not None
    assert (early.status, early.text, early.duration_s) == ("processing", "", 2.5)
    assert (early.agent_id, early.session_id) == ("summarizer", "s1")
    assert await repo.get("bob", "r1") is None

    await repo.apply(recorded("r1", agent_id="summarizer", session_id="s1"))
    await repo.apply(transcribed("r1", "noted early", agent_id="summarizer", session_id="s1"))
    done = await repo.get("alice", "r1")
    assert done is not None
    assert (done.status, done.text, done.created_at) == ("done", "noted early", T0)

    await repo.apply(transcribed("r2", "outran the gateway"))
    await repo.accepted("alice", "r2", 1.0, AgentRoute())  # the outcome got there first
    late = await repo.get("alice", "r2")
    assert late is not None
    assert (late.status, late.text) == ("done", "outran the gateway")


async def test_applying_twice_changes_nothing(repo: SqlRepository) -> None:
    batch: list[Event] = [
        recorded("r1", agent_id="summarizer"),
        transcribed("r1", "say it once"),
        answered("r1", "once"),
        agent_failed("r1"),
        recorded("r2"),
        failed("r2"),
    ]
    for event in batch:
        await repo.apply(event)
    before = [comparable(await repo.get("alice", r)) for r in ("r1", "r2")]
    for event in [*batch, *reversed(batch)]:
        await repo.apply(event)
    after = [comparable(await repo.get("alice", r)) for r in ("r1", "r2")]
    assert after == before
    assert len(after[0]["answers"]) == 2
    async with repo.engine.connect() as conn:
        assert len((await conn.execute(select(transcripts))).all()) == 2
        assert len((await conn.execute(select(answers))).all()) == 2


async def test_non_utc_times_are_the_same_instant(repo: SqlRepository) -> None:
    plus_two = timezone(timedelta(hours=2))
    await repo.apply(recorded("r1", created_at=datetime(2025, 3, 1, 14, 0, tzinfo=plus_two)))
    await repo.apply(recorded("r2", created_at=datetime(2025, 3, 1, 12, 30, tzinfo=UTC)))
    stored = await repo.get("alice", "r1")
    assert stored is not None
    assert stored.created_at == T0  # 14:00+02:00 is 12:00Z
    # r1 (12:00Z) is older than r2 (12:30Z), whatever offset it came with.
    assert await ids(repo, "alice") == ["r2", "r1"]
    assert await ids(repo, "alice", since=datetime(2025, 3, 1, 14, 15, tzinfo=plus_two)) == ["r2"]


# ---- isolation ----------------------------------------------------------------------------


async def test_users_never_see_each_other(repo: SqlRepository) -> None:
    await repo.apply(recorded("a1", "alice"))
    await repo.apply(transcribed("a1", "alice secret plans", "alice"))
    await repo.apply(answered("a1", "alice answer", "alice"))
    await repo.apply(recorded("b1", "bob", created_at=at(60)))
    await repo.apply(transcribed("b1", "bob public notes", "bob"))

    assert await repo.get("bob", "a1") is None
    assert await repo.get("alice", "b1") is None
    assert await ids(repo, "bob") == ["b1"]
    assert await ids(repo, "bob", q="secret") == []
    assert [t.recording_id for t in (await repo.page("bob", TranscriptQuery())).items] == ["b1"]
    # A cursor taken from alice's history only moves within bob's.
    alice_page = await repo.page("alice", TranscriptQuery(limit=1))
    assert [t.recording_id for t in alice_page.items] == ["a1"]
    assert not await repo.delete("bob", "a1")
    assert await repo.get("alice", "a1") is not None

    # Events about someone else's recording id (a bug or a forgery upstream) leave it alone.
    await repo.apply(transcribed("a1", "overwritten by bob", "bob"))
    await repo.apply(recorded("a1", "bob", agent_id="evil"))
    await repo.apply(answered("a1", "bob answer", "bob", event_id="ar-bob-a1"))
    mine = await repo.get("alice", "a1")
    assert mine is not None
    assert mine.text == "alice secret plans"
    assert mine.agent_id is None
    assert [a.output for a in mine.answers] == ["alice answer"]
    assert await repo.get("bob", "a1") is None

    assert await repo.delete("alice", "a1")
    assert await repo.get("alice", "a1") is None
    assert not await repo.delete("alice", "a1")
    assert await ids(repo, "bob") == ["b1"]
    async with repo.engine.connect() as conn:
        left = (await conn.execute(select(answers.c.user_id))).scalars().all()
    assert "alice" not in left  # the answers went with the transcript


# ---- search and filters -------------------------------------------------------------------


async def seed(repo: SqlRepository, rows: list[tuple[str, str, dict[str, Any]]]) -> None:
    for n, (rid, text, extra) in enumerate(rows):
        await repo.apply(recorded(rid, created_at=at(n * 60), agent_id=extra.get("agent_id")))
        if extra.get("failed"):
            await repo.apply(failed(rid))
        elif text:
            await repo.apply(transcribed(rid, text))


async def test_search_words_case_insensitive_and_literal(repo: SqlRepository) -> None:
    await seed(
        repo,
        [
            ("r0", "Hello World from the Kitchen", {}),
            ("r1", "hello again", {}),
            ("r2", "I am 100% sure", {}),
            ("r3", "I am 100 percent sure", {}),
            ("r4", "snake_case names", {}),
            ("r5", "snakeXcase names", {}),
            ("r6", r"path C:\temp\new", {}),
            ("r7", "world hello reversed", {}),
        ],
    )
    assert await ids(repo, "alice", q="HELLO") == ["r7", "r1", "r0"]
    assert await ids(repo, "alice", q="hello world") == ["r7", "r0"]  # every word, any order
    assert await ids(repo, "alice", q="  kitchen   HELLO ") == ["r0"]
    assert await ids(repo, "alice", q="100%") == ["r2"]
    assert await ids(repo, "alice", q="%") == ["r2"]
    assert await ids(repo, "alice", q="snake_case") == ["r4"]
    assert await ids(repo, "alice", q="_") == ["r4"]
    assert await ids(repo, "alice", q=r"C:\temp") == ["r6"]
    assert await ids(repo, "alice", q="\\") == ["r6"]
    assert await ids(repo, "alice", q="nowhere") == []
    page = await repo.page("alice", TranscriptQuery(q="hello", limit=2))
    assert [t.recording_id for t in page.items] == ["r7", "r1"]
    assert page.next_cursor is not None
    rest = await repo.page("alice", TranscriptQuery(q="hello", limit=2, cursor=page.next_cursor))
    assert [t.recording_id for t in rest.items] == ["r0"]
    assert rest.next_cursor is None


async def test_filters(repo: SqlRepository) -> None:
    await seed(
        repo,
        [
            ("r0", "first note", {"agent_id": "summarizer"}),
            ("r1", "second note", {}),
            ("r2", "", {"failed": True}),
            ("r3", "", {}),  # still processing
            ("r4", "fifth note", {"agent_id": "summarizer"}),
            ("r5", "sixth note", {"agent_id": "translator"}),
        ],
    )
    assert await ids(repo, "alice", agent_id="summarizer") == ["r4", "r0"]
    assert await ids(repo, "alice", status="failed") == ["r2"]
    assert await ids(repo, "alice", status="processing") == ["r3"]
    assert await ids(repo, "alice", status="done") == ["r5", "r4", "r1", "r0"]
    # since is inclusive, until exclusive: [r1, r4)
    assert await ids(repo, "alice", since=at(60), until=at(240)) == ["r3", "r2", "r1"]
    assert await ids(repo, "alice", since=at(61)) == ["r5", "r4", "r3", "r2"]
    assert await ids(repo, "alice", until=at(60)) == ["r0"]
    naive = (T0 + timedelta(seconds=240)).replace(tzinfo=None)  # read as UTC
    assert await ids(repo, "alice", since=naive) == ["r5", "r4"]
    assert await ids(repo, "alice", agent_id="summarizer", q="fifth", status="done") == ["r4"]
    assert await ids(repo, "alice", agent_id="summarizer", until=at(1)) == ["r0"]


# ---- pagination and iteration -------------------------------------------------------------


async def test_keyset_pages_have_no_gaps_or_duplicates(repo: SqlRepository) -> None:
    expected = []
    for n in range(47):
        # Pairs share a timestamp: the recording id breaks the tie.
        rid = f"rec{n:03d}"
        await repo.apply(recorded(rid, created_at=at(n // 2)))
        expected.append((at(n // 2), rid))
    expected.sort(reverse=True)

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = await repo.page("alice", TranscriptQuery(limit=10, cursor=cursor))
        seen.extend(t.recording_id for t in page.items)
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert pages == 5
    assert seen == [rid for _, rid in expected]

    # New recordings arriving while paging do not shift the pages already under way.
    first = await repo.page("alice", TranscriptQuery(limit=10))
    await repo.apply(recorded("newer", created_at=at(3600)))
    second = await repo.page("alice", TranscriptQuery(limit=10, cursor=first.next_cursor))
    assert [t.recording_id for t in second.items] == [rid for _, rid in expected[10:20]]

    exact = await repo.page("alice", TranscriptQuery(limit=48))
    assert len(exact.items) == 48
    assert exact.next_cursor is None

    with pytest.raises(ValueError, match="invalid cursor"):
        await repo.page("alice", TranscriptQuery(cursor="not-a-cursor!"))


async def test_iterate_fetches_in_batches(
    repo: SqlRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    from whisp_gateway.repository import sql

    total = 2 * sql.EXPORT_BATCH + 123  # three batches, the last one partial
    for n in range(total):
        await repo.apply(recorded(f"rec{n:04d}", created_at=at(n)))

    fetches: list[int] = []
    original = repo._fetch

    async def counting(*args: Any) -> list[Transcript]:
        rows = await original(*args)
        fetches.append(len(rows))
        return rows

    monkeypatch.setattr(repo, "_fetch", counting)
    got = [t.recording_id async for t in repo.iterate("alice", TranscriptQuery())]
    assert got == [f"rec{n:04d}" for n in reversed(range(total))]
    assert fetches == [sql.EXPORT_BATCH, sql.EXPORT_BATCH, 123]
    # Filters apply across batches too.
    assert len(await ids(repo, "alice", since=at(total - 250))) == 250


# ---- users --------------------------------------------------------------------------------


async def test_users_and_tokens(repo: SqlRepository) -> None:
    assert await repo.count_users() == 0
    alice, alice_token = await repo.add_user("alice")
    bob, bob_token = await repo.add_user("bob")
    assert alice_token.startswith("wsp_")
    assert len(alice_token) > 40
    assert alice_token != bob_token
    assert await repo.count_users() == 2
    assert [u.name for u in await repo.list_users()] == ["alice", "bob"]

    found = await repo.user_for_token(alice_token)
    assert found is not None
    assert (found.id, found.name) == (alice.id, "alice")
    assert await repo.user_for_token(alice_token + "x") is None
    assert await repo.user_for_token("") is None
    by_id = await repo.user_by_id(bob.id)
    assert by_id is not None
    assert by_id.name == "bob"
    assert await repo.user_by_id("nobody") is None

    async with repo.engine.connect() as conn:
        rows = (await conn.execute(select(users))).mappings().all()
    stored = " ".join(str(value) for row in rows for value in row.values())
    assert alice_token not in stored
    assert bob_token not in stored
    assert alice_token.removeprefix("wsp_") not in stored
    hashes = {row["name"]: row["token_hash"] for row in rows}
    assert hashes["alice"] == hashlib.sha256(alice_token.encode()).hexdigest()

    with pytest.raises(IntegrityError):
        await repo.add_user("alice")
    assert await repo.count_users() == 2

    assert await repo.remove_user("alice")
    assert not await repo.remove_user("alice")
    assert await repo.user_for_token(alice_token) is None
    assert await repo.user_by_id(alice.id) is None
    assert await repo.count_users() == 1
    assert await repo.user_for_token(bob_token) is not None


async def test_ping(repo: SqlRepository) -> None:
    assert await repo.ping()


def test_segments_factory_is_monotonic() -> None:
    segs = segments_for("one two three four five six seven")
    starts = [s.start for s in segs]
    assert starts == sorted(starts)
    assert all(s.end > s.start for s in segs)


async def test_replicas_starting_together_create_the_schema_once(database_url: str) -> None:
    """Replicas (or `whisp users` beside a starting gateway) race on a fresh database."""
    repos = [SqlRepository(database_url) for _ in range(4)]
    try:
        await asyncio.gather(*(r.create_schema() for r in repos))
        await asyncio.gather(*(r.create_schema() for r in repos))  # and again: a no-op
        user, token = await repos[0].add_user("alice")
        found = await repos[-1].user_for_token(token)
        assert found is not None
        assert found.id == user.id
    finally:
        for r in repos:
            await r.close()
