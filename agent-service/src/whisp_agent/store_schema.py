"""The store's tables (`usage`, `notes`) and how a database gets them.

The tables are the ones the store has always written to its SQLite file (same names,
columns and indexes), so an existing `agent.sqlite` opens as it is; `create_schema` adds
whatever is missing (a table, an index), every start, on SQLite and PostgreSQL alike.

A note is saved once per run: the unique key (user, run_key, kind, text) makes a
redelivered run's second insert a no-op, whichever replica runs it. SQLite keeps today's
UNIQUE constraint; PostgreSQL indexes md5(text) instead of the text, because a B-tree entry
holds at most ~2.7 kB and a note may be 2000 characters of any script.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Float,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)

from whisp_shared.database import make_engine

LOCK_KEY = 0x5748_4953_5041_4753
"""PostgreSQL advisory lock that starting replicas take around `create_schema` ("WHISPAGS":
not the gateway's, in case both use one database)."""

Id = BigInteger().with_variant(Integer, "sqlite")
"""64-bit on PostgreSQL; INTEGER on SQLite, where only that makes it the rowid."""

metadata = MetaData()

usage = Table(
    "usage",
    metadata,
    Column("id", Id, primary_key=True),
    Column("ts", Float, nullable=False),
    Column("user_id", Text, nullable=False),
    Column("session_id", Text),
    Column("run_id", Text, nullable=False),
    Column("target", Text, nullable=False),
    Column("agent_id", Text, nullable=False),
    Column("provider", Text, nullable=False),
    Column("model", Text, nullable=False),
    Column("requests", Integer, nullable=False),
    Column("input_tokens", Integer, nullable=False),
    Column("output_tokens", Integer, nullable=False),
    Column("cost_usd", Float),
    Index("usage_user", "user_id", "ts"),
    Index("usage_session", "session_id"),
    Index("usage_ts", "ts"),
)

notes = Table(
    "notes",
    metadata,
    Column("id", Id, primary_key=True),
    Column("ts", Float, nullable=False),
    Column("user_id", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("text", Text, nullable=False),
    Column("run_key", Text),
    UniqueConstraint("user_id", "run_key", "kind", "text").ddl_if(dialect="sqlite"),
    Index("notes_user", "user_id", "id"),
)
Index(
    "notes_once_per_run",
    notes.c.user_id,
    notes.c.run_key,
    notes.c.kind,
    func.md5(notes.c.text),
    unique=True,
).ddl_if(dialect="postgresql")


async def create_schema(url: str) -> None:
    """Create the missing tables and indexes, one replica at a time (PostgreSQL's advisory
    lock, SQLite's write lock), so replicas that start together do not race."""
    engine = make_engine(url, serialized=True, pool_size=1)
    try:
        async with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
            await conn.run_sync(_create)
    finally:
        await engine.dispose()


def _create(conn: Connection) -> None:
    metadata.create_all(conn)
    for table in metadata.sorted_tables:  # a table that exists may lack a newer index
        for index in table.indexes:
            index.create(conn, checkfirst=True)
