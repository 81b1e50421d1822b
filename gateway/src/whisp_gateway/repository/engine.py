"""The database connection: SQLite (WAL) by default, PostgreSQL from `DATABASE_URL`.

Timestamps are stored in UTC; SQLite hands them back naive, so every read goes through
`aware()`.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from whisp_gateway.repository.migrate import upgrade

SCHEMA_ATTEMPTS = 5


def async_url(url: str) -> str:
    """Accept the URLs people write (`postgresql://`, `sqlite:///`) and pick async drivers."""
    parsed = make_url(url)
    driver = {
        "postgresql": "postgresql+asyncpg",
        "postgres": "postgresql+asyncpg",
        "sqlite": "sqlite+aiosqlite",
    }.get(parsed.drivername, parsed.drivername)
    return parsed.set(drivername=driver).render_as_string(hide_password=False)


def aware(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def utc(value: datetime) -> datetime:
    return aware(value).astimezone(UTC)


class Database:
    """The engine and its dialect's upsert, shared by the repository's parts."""

    def __init__(self, url: str) -> None:
        self.url = async_url(url)
        self.engine: AsyncEngine = make_engine(self.url)
        self._insert = (
            postgresql.insert if self.engine.dialect.name == "postgresql" else (sqlite.insert)
        )

    async def create_schema(self) -> None:
        """Migrate the database to the newest schema (`migrate.upgrade`). A replica that
        loses a race it cannot wait out (a lock held past the timeout) tries again."""
        for attempt in range(1, SCHEMA_ATTEMPTS + 1):
            engine = make_engine(self.url, serialized=True)
            try:
                await upgrade(engine)
                return
            except DBAPIError:
                if attempt == SCHEMA_ATTEMPTS:
                    raise
                await asyncio.sleep(0.05 * attempt)
            finally:
                await engine.dispose()

    async def close(self) -> None:
        await self.engine.dispose()

    async def ping(self) -> bool:
        try:
            async with self.engine.connect() as conn:
                await conn.execute(select(1))
        except Exception:  # any failure means "not ready"
            return False
        return True


def make_engine(url: str, serialized: bool = False) -> AsyncEngine:
    """`serialized`: every transaction takes SQLite's write lock at BEGIN (`BEGIN
    IMMEDIATE`, also making DDL transactional), for migrations; PostgreSQL is unchanged."""
    if url.startswith("sqlite"):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()
            if serialized:
                dbapi_conn.isolation_level = None  # no implicit BEGIN: ours below

        if serialized:

            @event.listens_for(engine.sync_engine, "begin")
            def _begin_immediate(conn: Any) -> None:
                conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_async_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)
