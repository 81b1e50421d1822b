"""Bring a database to the newest schema revision, safely while replicas start together.

Every start runs the same steps in one transaction that first takes a lock: PostgreSQL's
transaction-scoped advisory lock, SQLite's write lock (`BEGIN IMMEDIATE`, on an engine of
its own so the gateway's reads keep their plain deferred transactions). The first replica
migrates; the others wait, then find the database at the head and do nothing. DDL is
transactional on both, so a migration that fails leaves the database as it was.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS = Path(__file__).parent / "migrations"
LOCK_KEY = 0x5748_4953_5054_54  # "WHISPTT": any constant the gateway's replicas share


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head() -> str:
    found = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert found is not None  # the versions folder ships with the package
    return found


def current(connection: Connection) -> str | None:
    """The revision a database is at (None: never migrated)."""
    return MigrationContext.configure(connection).get_current_revision()


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Migrate on `engine`: made with `make_engine(url, serialized=True)` for SQLite."""
    async with engine.begin() as conn:
        await conn.run_sync(_upgrade, revision)


def _upgrade(connection: Connection, revision: str) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
    command.upgrade(alembic_config(connection), revision)
