"""The store shared by replicas (`whisp_agent.store`): two `Store`s on one database, as two
agent pods on one `agents.database_url`, see each other's notes and usage, export and forget
all of a user's rows whoever wrote them, and save a redelivered run's note once. On a SQLite
file and on a real PostgreSQL (a private server, `tests.gateway.postgres`); plus a file made
with the schema the store had before it moved to SQLAlchemy, and two whole services on one
PostgreSQL answering `GET`/`DELETE /me/data` for notes the other one saved."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest

from tests.agents.chat_stub import ChatStub
from tests.agents.conftest import make_settings
from tests.agents.test_me_data import ALICE, chat, export
from tests.gateway import conftest as gateway_fixtures
from tests.gateway.postgres import PostgresProvider
from whisp_agent.app import create_app
from whisp_agent.settings import AgentSettings
from whisp_agent.store import Store, UsageRow
from whisp_cli.redis_server import free_port
from whisp_shared.bus import EventBus
from whisp_shared.config import BusSettings
from whisp_shared.user_data import AGENT_DATA_PATH, AgentData, AgentDataDeleted

postgres = gateway_fixtures.postgres
database_url = gateway_fixtures.database_url
"""One database two replicas share: a SQLite file, or a fresh PostgreSQL database."""


@pytest.fixture
async def replicas(database_url: str) -> AsyncIterator[tuple[Store, Store]]:
    a, b = Store(database_url), Store(database_url)
    yield a, b
    await a.close()
    await b.close()


def row(user: str, session: str | None, tokens: int, run: str = "r1") -> UsageRow:
    return UsageRow(
        user_id=user, session_id=session, run_id=run, target="helper", agent_id="helper",
        provider="stub", model="stub-model", requests=1, input_tokens=tokens,
        output_tokens=1, cost_usd=0.5,
    )  # fmt: skip


async def test_replicas_see_each_others_notes_and_usage(replicas: tuple[Store, Store]) -> None:
    a, b = replicas
    first = await a.add("alice", "note", "from pod a", run_key="run-a")
    second = await b.add("alice", "action_item", "from pod b", run_key="run-b")
    await a.record_usage([row("alice", "s1", 10, run="run-a")])
    await b.record_usage([row("alice", "s1", 20, run="run-b"), row("bob", "s2", 5)])

    for store in (a, b):
        assert [(n.id, n.text) for n in await store.notes("alice")] == [
            (second, "from pod b"), (first, "from pod a")]  # fmt: skip
        [session] = await store.usage_totals("session", user_id="alice")
        assert (session.key, session.input_tokens, session.runs) == ("s1", 30, 2)
        assert session.cost_usd == pytest.approx(1.0)
        by_user = {t.key: t.input_tokens for t in await store.usage_totals("user")}
        assert by_user == {"alice": 30, "bob": 5}
        notes, usage = await store.user_records("alice")
        assert [n.text for n in notes] == ["from pod a", "from pod b"]  # oldest first
        assert [(u.run_id, u.input_tokens) for u in usage] == [("run-a", 10), ("run-b", 20)]
        assert all(u.user_id == "alice" and u.ts <= time.time() for u in usage)


async def test_forget_removes_the_users_rows_from_every_replica_and_no_one_elses(
    replicas: tuple[Store, Store],
) -> None:
    a, b = replicas
    await a.add("alice", "note", "kestrel", run_key="r-a")
    await b.add("alice", "note", "heron", run_key="r-b")
    await b.add("bob", "note", "bob's own", run_key="r-c")
    await a.record_usage([row("alice", "s1", 1), row("bob", "s2", 2)])
    await b.record_usage([row("alice", "s1", 3)])

    assert await b.forget_user("alice") == (2, 2)
    for store in (a, b):
        assert await store.user_records("alice") == ([], [])
        assert await store.notes("alice") == []
        assert [n.text for n in await store.notes("bob")] == ["bob's own"]
        assert [t.key for t in await store.usage_totals("user")] == ["bob"]
    assert await a.forget_user("alice") == (0, 0)


async def test_a_redelivered_runs_note_is_saved_once_whichever_replica_runs_it(
    replicas: tuple[Store, Store],
) -> None:
    a, b = replicas
    first = await a.add("alice", "note", "call Bob", run_key="run-1")
    assert await b.add("alice", "note", "call Bob", run_key="run-1") == first
    # Two replicas running the same redelivered entry at once still save it once.
    both = await asyncio.gather(
        a.add("alice", "note", "buy milk", run_key="run-2"),
        b.add("alice", "note", "buy milk", run_key="run-2"),
    )
    assert both[0] == both[1]
    # Another run, another kind, another user, or no run key at all: a new note each.
    await b.add("alice", "note", "call Bob", run_key="run-3")
    await b.add("alice", "action_item", "call Bob", run_key="run-1")
    await b.add("carol", "note", "call Bob", run_key="run-1")
    await a.add("alice", "note", "call Bob", run_key=None)
    await b.add("alice", "note", "call Bob", run_key=None)
    assert [(n.kind, n.text) for n in await a.notes("alice")] == [
        ("note", "call Bob"), ("note", "call Bob"), ("action_item", "call Bob"),
        ("note", "call Bob"), ("note", "buy milk"), ("note", "call Bob"),
    ]  # fmt: skip


async def test_the_longest_note_in_any_script_is_saved_once(
    replicas: tuple[Store, Store],
) -> None:
    """2000 characters (the tool's limit) of CJK are ~6 kB: more than a PostgreSQL B-tree
    entry holds, so the key indexes a hash of the text there."""
    a, b = replicas
    rng = random.Random(7)
    text = "".join(chr(rng.randint(0x4E00, 0x9FFF)) for _ in range(2000))
    note_id = await a.add("alice", "note", text, run_key="run-1")
    assert await b.add("alice", "note", text, run_key="run-1") == note_id
    [note] = await b.notes("alice")
    assert (note.id, note.text) == (note_id, text)


async def test_a_scrape_on_one_replica_sees_sessions_another_served(
    replicas: tuple[Store, Store],
) -> None:
    """`recent_sessions` is synchronous (called on the event loop, as a scrape does)."""
    a, b = replicas
    await a.record_usage([row("alice", "s1", 10), row("alice", None, 99)])
    await b.record_usage([row("bob", "s2", 5)])
    await b.record_usage([row("alice", "s1", 1)])  # s1 is the most recent again
    sessions, active = b.recent_sessions(time.time() - 60, limit=10)
    assert active == 2
    assert {(s.user_id, s.session_id, s.input_tokens) for s in sessions} == {
        ("alice", "s1", 11), ("bob", "s2", 5)}  # fmt: skip
    assert a.recent_sessions(time.time() - 60, limit=1)[0][0].session_id == "s1"  # newest
    await b.close()
    assert b.recent_sessions(time.time() - 60, limit=10) == ([], 0)


# The store's schema before SQLAlchemy, as `agent.sqlite` files in use were made.
PREVIOUS_SCHEMA = """
CREATE TABLE IF NOT EXISTS usage (
    id INTEGER PRIMARY KEY, ts REAL NOT NULL, user_id TEXT NOT NULL, session_id TEXT,
    run_id TEXT NOT NULL, target TEXT NOT NULL, agent_id TEXT NOT NULL,
    provider TEXT NOT NULL, model TEXT NOT NULL, requests INTEGER NOT NULL,
    input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL, cost_usd REAL
);
CREATE INDEX IF NOT EXISTS usage_user ON usage (user_id, ts);
CREATE INDEX IF NOT EXISTS usage_session ON usage (session_id);
CREATE INDEX IF NOT EXISTS usage_ts ON usage (ts);
CREATE TABLE IF NOT EXISTS notes (
    id INTEGER PRIMARY KEY, ts REAL NOT NULL, user_id TEXT NOT NULL, kind TEXT NOT NULL,
    text TEXT NOT NULL, run_key TEXT, UNIQUE (user_id, run_key, kind, text)
);
"""


async def test_a_file_made_with_the_previous_schema_opens_with_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "data" / "agent.sqlite"
    path.parent.mkdir()
    with sqlite3.connect(path) as db:
        db.executescript(PREVIOUS_SCHEMA)
        db.execute(
            "INSERT INTO usage (ts, user_id, session_id, run_id, target, agent_id, provider, "
            "model, requests, input_tokens, output_tokens, cost_usd) "
            "VALUES (1700000000.5, 'alice', 's1', 'old-run', 'helper', 'helper', 'local', "
            "'qwen', 2, 40, 8, NULL)"
        )
        db.execute(
            "INSERT INTO notes (ts, user_id, kind, text, run_key) "
            "VALUES (1700000001.25, 'alice', 'note', 'from last year', 'old-run')"
        )
    db.close()

    store = Store(path)
    try:
        notes, usage = await store.user_records("alice")
        assert [(n.id, n.text, n.ts) for n in notes] == [(1, "from last year", 1700000001.25)]
        [old] = usage
        assert (old.run_id, old.input_tokens, old.cost_usd, old.ts) == (
            "old-run", 40, None, 1700000000.5)  # fmt: skip
        # The old unique key still holds a redelivered run to one note; new rows follow on.
        assert await store.add("alice", "note", "from last year", run_key="old-run") == 1
        assert await store.add("alice", "note", "today", run_key="new-run") == 2
        await store.record_usage([row("alice", "s1", 2, run="new-run")])
        [total] = await store.usage_totals("session", user_id="alice")
        assert (total.input_tokens, total.runs) == (42, 2)
    finally:
        await store.close()
    with sqlite3.connect(path) as db:
        indexes = {name for (name,) in db.execute("SELECT name FROM sqlite_master "
                                                  "WHERE type = 'index'")}  # fmt: skip
        columns = [c[1] for c in db.execute("PRAGMA table_info(notes)")]
    db.close()
    assert {"usage_user", "usage_session", "usage_ts", "notes_user"} <= indexes  # added
    assert columns == ["id", "ts", "user_id", "kind", "text", "run_key"]  # kept


async def test_a_database_that_is_away_is_not_ready_and_exports_no_sessions() -> None:
    store = Store(f"postgresql://whisp@127.0.0.1:{free_port()}/whisp")
    try:
        assert await store.ping() is False
        with pytest.raises(ConnectionRefusedError):
            await store.open()
        started = time.monotonic()
        assert store.recent_sessions(0.0, 10) == ([], 0)
        assert time.monotonic() - started < 2.5  # never blocks a scrape for long
    finally:
        await store.close()


def test_the_database_comes_from_config_or_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("DATABASE_URL", "WHISP_AGENTS__DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    config = tmp_path / "config.yaml"
    config.write_text("agents:\n  database_url: sqlite:///from-the-file.db\n")
    assert AgentSettings(data_dir=tmp_path).database_url is None  # the SQLite file
    monkeypatch.setenv("WHISP_CONFIG", str(config))
    assert AgentSettings(data_dir=tmp_path).database_url == "sqlite:///from-the-file.db"
    monkeypatch.setenv("WHISP_AGENTS__DATABASE_URL", "postgresql://u@db/agents")
    assert AgentSettings(data_dir=tmp_path).database_url == "postgresql://u@db/agents"
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@db/shared")  # as the gateway reads it
    assert AgentSettings(data_dir=tmp_path).database_url == "postgresql://u@db/shared"


async def test_two_services_on_one_database_export_and_delete_each_others_notes(
    tmp_path: Path, bus_settings: BusSettings, chat_stub: ChatStub, postgres: PostgresProvider
) -> None:
    """The scale-out bug: a note saved through pod A is in pod B's export, and B's delete
    leaves nothing of it for A to show."""
    async with postgres.database() as url, AsyncExitStack() as stack:
        clients = []
        for pod in ("a", "b"):
            settings = make_settings(tmp_path / pod, chat_stub.base_url, sessions="redis",
                                     database_url=url)  # fmt: skip
            app = create_app(settings, EventBus(bus_settings, consumer_name=f"agents-{pod}"))
            await stack.enter_async_context(app.router.lifespan_context(app))
            transport = httpx.ASGITransport(app=app)
            clients.append(await stack.enter_async_context(
                httpx.AsyncClient(transport=transport, base_url=f"http://{pod}")))  # fmt: skip
        pod_a, pod_b = clients
        assert (await pod_b.get("/readyz")).json()["checks"]["database"] is True

        await chat(pod_a, chat_stub, ALICE, "Remember the kestrel invoice", "kestrel invoice")
        on_b = await export(pod_b, ALICE)
        assert [(n["kind"], n["text"]) for n in on_b.notes] == [("note", "kestrel invoice")]
        assert sum(u["requests"] for u in on_b.usage) == 2
        assert [n["text"] for n in (await pod_b.get("/notes", headers=ALICE)).json()] == [
            "kestrel invoice"]  # fmt: skip

        deleted = await pod_b.delete(AGENT_DATA_PATH, headers=ALICE)
        assert AgentDataDeleted.model_validate(deleted.json()) == AgentDataDeleted(
            sessions=1, notes=1, usage_rows=len(on_b.usage)
        )
        assert await export(pod_a, ALICE) == AgentData()
        assert (await pod_a.get("/usage", headers=ALICE)).json() == []
