"""The gateway's schema migrations: from nothing, and from a database the previous schema
(`metadata.create_all`, before migrations) made, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    Column,
    Connection,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    insert,
    inspect,
    text,
)

from tests.gateway.conftest import GatewayFactory, signed_in
from tests.gateway.factories import transcribed
from whisp_gateway.repository import SqlRepository
from whisp_gateway.repository.engine import make_engine
from whisp_gateway.repository.migrate import current, head, upgrade
from whisp_gateway.repository.tables import metadata
from whisp_gateway.repository.users import hash_token
from whisp_shared.user_settings import UserSettings

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def previous_schema() -> MetaData:
    """The tables exactly as the gateway created them before migrations existed."""
    old = MetaData()
    Table(
        "users",
        old,
        Column("id", String(64), primary_key=True),
        Column("name", String(128), nullable=False, unique=True),
        Column("token_hash", String(64), nullable=False, unique=True),
        Column("created_at", DateTime(timezone=True), nullable=False),
    )
    Table(
        "transcripts",
        old,
        Column("recording_id", String(128), primary_key=True),
        Column("user_id", String(128), nullable=False),
        Column("status", String(16), nullable=False),
        Column("text", Text, nullable=False, default=""),
        Column("language", String(16)),
        Column("segments", JSON, nullable=False, default=list),
        Column("duration_s", Float),
        Column("processing_s", Float),
        Column("engine", String(64)),
        Column("model", String(128)),
        Column("agent_id", String(128)),
        Column("pipeline", String(128)),
        Column("session_id", String(128)),
        Column("error_code", String(64)),
        Column("error_message", Text),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False),
        Index("ix_transcripts_user_created", "user_id", "created_at", "recording_id"),
    )
    Table(
        "user_limits",
        old,
        Column("user_id", String(64), primary_key=True),
        Column("rate_limit", String(32), nullable=False),
        Column("burst", Integer),
    )
    Table(
        "answers",
        old,
        Column("event_id", String(64), primary_key=True),
        Column("recording_id", String(128), nullable=False, index=True),
        Column("user_id", String(128), nullable=False),
        Column("status", String(16), nullable=False),
        Column("agent_id", String(128)),
        Column("pipeline", String(128)),
        Column("output", Text, nullable=False, default=""),
        Column("usage", JSON, nullable=False, default=dict),
        Column("error_code", String(64)),
        Column("error_message", Text),
        Column("created_at", DateTime(timezone=True), nullable=False),
    )
    return old


def _columns(conn: Connection) -> dict[str, set[str]]:
    found = inspect(conn)
    return {t: {c["name"] for c in found.get_columns(t)} for t in found.get_table_names()}


async def make_previous_database(url: str, token: str) -> None:
    """What a gateway of the previous release left: its tables, a user and a transcript."""
    engine = make_engine(SqlRepository(url).url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(previous_schema().create_all)
            await conn.execute(
                insert(previous_schema().tables["users"]).values(
                    id="u-alice", name="alice", token_hash=hash_token(token), created_at=NOW
                )
            )
            await conn.execute(
                insert(previous_schema().tables["transcripts"]).values(
                    recording_id="old-1",
                    user_id="u-alice",
                    status="done",
                    text="kept across the upgrade",
                    segments=[],
                    created_at=NOW,
                    updated_at=NOW,
                )
            )
    finally:
        await engine.dispose()


async def schema_of(url: str) -> tuple[str | None, dict[str, set[str]]]:
    engine = make_engine(SqlRepository(url).url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(current), await conn.run_sync(_columns)
    finally:
        await engine.dispose()


def expected_columns() -> dict[str, set[str]]:
    return {name: {c.name for c in table.columns} for name, table in metadata.tables.items()}


async def test_a_fresh_database_is_built_from_nothing(database_url: str) -> None:
    repo = SqlRepository(database_url)
    try:
        await repo.create_schema()
        await repo.create_schema()  # again: already at the head, nothing to do
    finally:
        await repo.close()
    revision, columns = await schema_of(database_url)
    assert revision == head() == "0002_user_settings"
    assert columns == {**expected_columns(), "alembic_version": {"version_num"}}


async def test_a_database_of_the_previous_schema_is_upgraded_with_its_data(
    database_url: str,
) -> None:
    await make_previous_database(database_url, "wsp_alice-token-0000")
    revision, columns = await schema_of(database_url)
    assert revision is None  # no alembic_version: made by create_all
    assert "raw_text" not in columns["transcripts"]

    repo = SqlRepository(database_url)
    try:
        await repo.create_schema()
        revision, columns = await schema_of(database_url)
        assert revision == head()
        assert columns == {**expected_columns(), "alembic_version": {"version_num"}}
        # The old rows are there and work with the new columns.
        user = await repo.user_for_token("wsp_alice-token-0000")
        assert user is not None
        assert user.name == "alice"
        old = await repo.get("u-alice", "old-1")
        assert old is not None
        assert (old.text, old.raw_text) == ("kept across the upgrade", None)
        await repo.put_settings("u-alice", UserSettings(vocabulary=["Kestrel"]))
        assert (await repo.get_settings("u-alice")).vocabulary == ["Kestrel"]
        event = transcribed("new-1", "Kubernetes rocks", "u-alice")
        await repo.apply(event.model_copy(update={"raw_text": "k8s rocks"}))
        new = await repo.get("u-alice", "new-1")
        assert new is not None
        assert (new.text, new.raw_text) == ("Kubernetes rocks", "k8s rocks")
    finally:
        await repo.close()


async def test_the_baseline_matches_the_previous_schema(database_url: str) -> None:
    """Upgrading a fresh database to the baseline alone gives what create_all made."""
    engine = make_engine(SqlRepository(database_url).url, serialized=True)
    try:
        await upgrade(engine, "0001_baseline")
        async with engine.connect() as conn:
            columns = await conn.run_sync(_columns)
            version = await conn.run_sync(current)
            indexes = await conn.run_sync(lambda c: inspect(c).get_indexes("transcripts"))
    finally:
        await engine.dispose()
    old = {name: {c.name for c in t.columns} for name, t in previous_schema().tables.items()}
    assert version == "0001_baseline"
    assert columns == {**old, "alembic_version": {"version_num"}}
    assert [i["name"] for i in indexes] == ["ix_transcripts_user_created"]


async def test_replicas_upgrading_a_previous_database_together(database_url: str) -> None:
    """One migrates under the lock; the others wait and find it done (one version row)."""
    await make_previous_database(database_url, "wsp_alice-token-0001")
    repos = [SqlRepository(database_url) for _ in range(3)]
    try:
        await asyncio.gather(*(r.create_schema() for r in repos))
        async with repos[0].engine.connect() as conn:
            versions = (await conn.execute(text("SELECT version_num FROM alembic_version"))).all()
        assert [v[0] for v in versions] == [head()]
        assert await repos[2].user_for_token("wsp_alice-token-0001") is not None
    finally:
        for r in repos:
            await r.close()


async def test_a_gateway_starts_on_a_previous_database(
    gateway: GatewayFactory, sqlite_url: str
) -> None:
    """Started on an old database, the gateway upgrades it and serves the new routes."""
    token = "wsp_alice-token-0002"
    await make_previous_database(sqlite_url, token)
    with gateway() as url:
        async with signed_in(url, {"alice": token}, "alice") as (alice,):
            old = await alice.client.get("/api/transcripts/old-1")
            assert old.json()["text"] == "kept across the upgrade"
            saved = await alice.client.patch("/api/me/settings", json={"language": "de"})
            assert saved.status_code == 200, saved.text
            assert saved.json()["language"] == "de"
