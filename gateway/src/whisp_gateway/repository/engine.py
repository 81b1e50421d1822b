"""The gateway's database: SQLite (WAL) by default, PostgreSQL from `DATABASE_URL`.

URLs and engines come from `whisp_shared.database` (the agent service opens its store the
same way); the schema is the gateway's own (`migrate`). Timestamps are stored in UTC;
SQLite hands them back naive, so every read goes through `aware()`.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from whisp_gateway.repository.migrate import upgrade
from whisp_shared.database import async_url, insert_for, make_engine, ping

SCHEMA_ATTEMPTS = 5


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
        self._insert = insert_for(self.engine)

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
        return await ping(self.engine)
