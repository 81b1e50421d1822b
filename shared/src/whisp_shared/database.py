"""SQL databases of the services that keep rows: SQLite (WAL) by default, PostgreSQL by URL.

The gateway's repository and the agent service's store open their engines here, so both
read the same URLs the same way (`postgresql://…` as people write it, `sqlite:///…`) and
tune SQLite the same way. Needs SQLAlchemy's asyncio extra, aiosqlite and asyncpg, which
the services that import this module depend on (the rest of whisp_shared does not).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Table, event, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

SQLITE_TIMEOUT_S = 30
"""How long a SQLite write waits for another connection's lock (busy_timeout as well)."""

InsertFactory = Callable[[Table], postgresql.Insert | sqlite.Insert]


def async_url(url: str) -> str:
    """Accept the URLs people write (`postgresql://`, `sqlite:///`) and pick async drivers."""
    parsed = make_url(url)
    driver = {
        "postgresql": "postgresql+asyncpg",
        "postgres": "postgresql+asyncpg",
        "sqlite": "sqlite+aiosqlite",
    }.get(parsed.drivername, parsed.drivername)
    return parsed.set(drivername=driver).render_as_string(hide_password=False)


def sqlite_url(path: Path) -> str:
    """The async URL of a SQLite file."""
    return f"sqlite+aiosqlite:///{path}"


def make_engine(url: str, serialized: bool = False, pool_size: int = 10) -> AsyncEngine:
    """An engine on `url` (normalised with `async_url`). SQLite: WAL, a 30-s busy timeout,
    the file's folder created. `serialized`: every transaction takes SQLite's write lock at
    BEGIN (`BEGIN IMMEDIATE`, also making DDL transactional), for migrations. PostgreSQL:
    a pool of `pool_size` (+ twice as many on demand), connections checked before use."""
    url = async_url(url)
    if not url.startswith("sqlite"):
        return create_async_engine(
            url, pool_size=pool_size, max_overflow=2 * pool_size, pool_pre_ping=True
        )
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url, connect_args={"timeout": SQLITE_TIMEOUT_S})

    @event.listens_for(engine.sync_engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_TIMEOUT_S * 1000}")
        cur.close()
        if serialized:
            dbapi_conn.isolation_level = None  # no implicit BEGIN: ours below

    if serialized:

        @event.listens_for(engine.sync_engine, "begin")
        def _begin_immediate(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def insert_for(engine: AsyncEngine) -> InsertFactory:
    """The dialect's INSERT, which has `on_conflict_do_nothing` / `on_conflict_do_update`."""
    return postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert


async def ping(engine: AsyncEngine) -> bool:
    """Whether the database answers (a readiness check)."""
    try:
        async with engine.connect() as conn:
            await conn.execute(select(1))
    except Exception:  # any failure means "not ready"
        return False
    return True
