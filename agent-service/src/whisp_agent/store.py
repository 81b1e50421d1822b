"""What runs leave behind that is not a session: token usage per run and agent, users' notes.

One SQL database (tables: `store_schema`). By default the SQLite file `agent.sqlite` under
`agents.data_dir`, which suits one replica; with several, `agents.database_url` names a
PostgreSQL database they share, so a user's export and deletion (`api/me.py`), the note
tool and the usage endpoints see every replica's rows, not just their own pod's.

The schema is created on first use (or by `open()` at start-up, which fails fast when the
database is away). `recent_sessions` is synchronous for the Prometheus scrape, which runs
on the event loop and cannot await: it blocks on a loop and engine of its own (`_SyncReads`).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy import and_, delete, distinct, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from whisp_agent.store_schema import create_schema, notes, usage
from whisp_shared.database import async_url, insert_for, make_engine, ping, sqlite_url
from whisp_shared.logs import get_logger

log = get_logger(__name__)

T = TypeVar("T")

POOL_SIZE = 2
"""PostgreSQL connections a replica keeps (up to three times as many under load): writes
are tiny next to a model call, and KEDA may run many replicas against one server."""
SYNC_READ_TIMEOUT_S = 2.0
"""Longest a scrape waits for the session totals before it exports none (logged)."""


class UsageRow(BaseModel):
    user_id: str
    session_id: str | None
    run_id: str
    target: str
    agent_id: str
    provider: str
    model: str
    requests: int
    input_tokens: int
    output_tokens: int
    cost_usd: float | None


class StoredUsage(UsageRow):
    """One usage row as kept, with its time (a user's export)."""

    ts: float


class UsageTotal(BaseModel):
    key: str
    requests: int
    input_tokens: int
    output_tokens: int
    cost_usd: float | None
    runs: int


class SessionUsage(BaseModel):
    """A session's totals so far (the metrics export the recently active ones)."""

    user_id: str
    session_id: str
    requests: int
    input_tokens: int
    output_tokens: int
    cost_usd: float | None
    last_ts: float


class Note(BaseModel):
    id: int
    kind: str
    text: str
    ts: float


GROUP_BY = {"agent": usage.c.agent_id, "session": usage.c.session_id, "user": usage.c.user_id}
USAGE_FIELDS = ("ts", "session_id", "run_id", "target", "agent_id", "provider", "model",
                "requests", "input_tokens", "output_tokens", "cost_usd")  # fmt: skip
NOTE_COLUMNS = (notes.c.id, notes.c.kind, notes.c.text, notes.c.ts)


class Store:
    """`database`: a SQLite file, or a database URL (`postgresql://…`, `sqlite:///…`)."""

    def __init__(self, database: Path | str) -> None:
        self.url = sqlite_url(database) if isinstance(database, Path) else async_url(database)
        self._engine = make_engine(self.url, pool_size=POOL_SIZE)
        self._insert = insert_for(self._engine)
        self._schema_ready = False
        self._schema_lock = asyncio.Lock()
        self._sync = _SyncReads(self.url)

    async def open(self) -> None:
        """Create what the schema lacks; raises when the database cannot be reached."""
        async with self._schema_lock:
            if not self._schema_ready:
                await create_schema(self.url)
                self._schema_ready = True

    async def _ready(self) -> AsyncEngine:
        if not self._schema_ready:
            await self.open()
        return self._engine

    async def close(self) -> None:
        await self._sync.close()
        await self._engine.dispose()

    async def ping(self) -> bool:
        """Readiness: the database answers."""
        return await ping(self._engine)

    async def record_usage(self, rows: list[UsageRow]) -> None:
        if not rows:
            return
        now = time.time()
        async with (await self._ready()).begin() as conn:
            await conn.execute(usage.insert(), [{"ts": now, **r.model_dump()} for r in rows])

    async def usage_totals(
        self, by: str, user_id: str | None = None, session_id: str | None = None
    ) -> list[UsageTotal]:
        """Totals grouped by `agent`, `session` or `user`, optionally for one user/session."""
        key = func.coalesce(GROUP_BY[by], "").label("key")
        query = select(
            key,
            func.sum(usage.c.requests),
            func.sum(usage.c.input_tokens),
            func.sum(usage.c.output_tokens),
            func.sum(usage.c.cost_usd),
            func.count(distinct(usage.c.run_id)),
        )
        if user_id is not None:
            query = query.where(usage.c.user_id == user_id)
        if session_id is not None:
            query = query.where(usage.c.session_id == session_id)
        async with (await self._ready()).connect() as conn:
            rows = (await conn.execute(query.group_by(key).order_by(key))).all()
        return [
            UsageTotal(key=k, requests=r, input_tokens=i, output_tokens=o, cost_usd=c, runs=n)
            for k, r, i, o, c, n in rows
        ]

    def recent_sessions(self, since: float, limit: int) -> tuple[list[SessionUsage], int]:
        """The `limit` sessions whose last run is newest, among those with a run since
        `since`, with their totals over all time; and how many such sessions there are.

        Synchronous: a Prometheus scrape calls it (two indexed reads of the recent rows).
        A closed store has none (a scrape may outlive the service's store in tests), nor
        does one whose database does not answer within `SYNC_READ_TIMEOUT_S` (logged)."""
        try:
            return self._sync.run(lambda engine: _recent_sessions(engine, since, limit))
        except _Closed:
            return [], 0
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            log.warning("session_totals_unavailable", error=repr(exc))
            return [], 0

    async def add(self, user_id: str, kind: str, text: str, run_key: str | None) -> int:
        """Save a note; the same note from a redelivered run (same run_key) is saved once,
        whichever replica runs it again (the unique key makes the second insert a no-op)."""
        row = {"ts": time.time(), "user_id": user_id, "kind": kind, "text": text,
               "run_key": run_key}  # fmt: skip
        insert = self._insert(notes).values(row).on_conflict_do_nothing().returning(notes.c.id)
        async with (await self._ready()).begin() as conn:
            note_id = (await conn.execute(insert)).scalar()
            if note_id is None:  # saved before: the earlier note's id
                kept = select(notes.c.id).where(
                    notes.c.user_id == user_id,
                    notes.c.kind == kind,
                    notes.c.text == text,
                    notes.c.run_key == run_key,
                )
                note_id = (await conn.execute(kept.order_by(notes.c.id.desc()).limit(1))).scalar()
        assert note_id is not None  # inserted, or kept from the first time
        return int(note_id)

    async def notes(self, user_id: str, limit: int = 100) -> list[Note]:
        query = select(*NOTE_COLUMNS).where(notes.c.user_id == user_id)
        async with (await self._ready()).connect() as conn:
            rows = (await conn.execute(query.order_by(notes.c.id.desc()).limit(limit))).all()
        return [Note(id=i, kind=k, text=t, ts=ts) for i, k, t, ts in rows]

    async def user_records(self, user_id: str) -> tuple[list[Note], list[StoredUsage]]:
        """Every note and usage row of one user, oldest first (their export)."""
        mine_notes = select(*NOTE_COLUMNS).where(notes.c.user_id == user_id).order_by(notes.c.id)
        mine_usage = (
            select(*(usage.c[name] for name in USAGE_FIELDS))
            .where(usage.c.user_id == user_id)
            .order_by(usage.c.id)
        )
        async with (await self._ready()).connect() as conn:
            note_rows = (await conn.execute(mine_notes)).all()
            usage_rows = (await conn.execute(mine_usage)).all()
        return (
            [Note(id=i, kind=k, text=t, ts=ts) for i, k, t, ts in note_rows],
            [StoredUsage(user_id=user_id, **row._asdict()) for row in usage_rows],
        )

    async def forget_user(self, user_id: str) -> tuple[int, int]:
        """Delete every note and usage row of one user: (notes, usage rows) deleted."""
        async with (await self._ready()).begin() as conn:
            gone_notes = await conn.execute(delete(notes).where(notes.c.user_id == user_id))
            gone_usage = await conn.execute(delete(usage).where(usage.c.user_id == user_id))
        return gone_notes.rowcount, gone_usage.rowcount


async def _recent_sessions(
    engine: AsyncEngine, since: float, limit: int
) -> tuple[list[SessionUsage], int]:
    last = func.max(usage.c.ts).label("last")
    active = (
        select(usage.c.user_id, usage.c.session_id, last)
        .where(usage.c.ts >= since, usage.c.session_id.is_not(None))
        .group_by(usage.c.user_id, usage.c.session_id)
    )
    recent = active.order_by(last.desc()).limit(limit).cte("recent")
    totals = (
        select(
            recent.c.user_id,
            recent.c.session_id,
            func.sum(usage.c.requests),
            func.sum(usage.c.input_tokens),
            func.sum(usage.c.output_tokens),
            func.sum(usage.c.cost_usd),
            recent.c.last,
        )
        .join_from(
            recent,
            usage,
            and_(usage.c.user_id == recent.c.user_id, usage.c.session_id == recent.c.session_id),
        )
        .group_by(recent.c.user_id, recent.c.session_id, recent.c.last)
        .order_by(recent.c.last.desc())
    )
    async with engine.connect() as conn:
        count = (await conn.execute(select(func.count()).select_from(active.subquery()))).scalar()
        rows = (await conn.execute(totals)).all()
    sessions = [
        SessionUsage(user_id=u, session_id=s, requests=r, input_tokens=i, output_tokens=o,
                     cost_usd=c, last_ts=ts)
        for u, s, r, i, o, c, ts in rows
    ]  # fmt: skip
    return sessions, int(count or 0)


class _Closed(Exception):
    """The store was closed: there is nothing to read."""


class _SyncReads:
    """Synchronous reads for callers on the event loop's own thread, which cannot await:
    each runs on a loop of its own, in a daemon thread started on first use, with an engine
    of its own (one connection; asyncpg's belong to the loop that opened them)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._lock = threading.Lock()
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._engine: AsyncEngine | None = None

    def run(self, read: Callable[[AsyncEngine], Coroutine[Any, Any, T]]) -> T:
        """`read(engine)`, waited for; raises TimeoutError after `SYNC_READ_TIMEOUT_S`,
        `_Closed` once closed."""
        with self._lock:
            if self._closed:
                raise _Closed
            if self._loop is None:
                self._engine = make_engine(self.url, pool_size=1)
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(
                    target=self._loop.run_forever, name="store-sync-reads", daemon=True
                )
                self._thread.start()
            loop, engine = self._loop, self._engine
        assert engine is not None
        future = asyncio.run_coroutine_threadsafe(read(engine), loop)
        try:
            return future.result(SYNC_READ_TIMEOUT_S)
        except TimeoutError:
            future.cancel()
            raise

    async def close(self) -> None:
        """Stop the thread and its engine (once: closing again does nothing)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            loop, thread, engine = self._loop, self._thread, self._engine
        if loop is None or thread is None or engine is None:
            return
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(engine.dispose(), loop))
        loop.call_soon_threadsafe(loop.stop)
        await asyncio.to_thread(thread.join)
        loop.close()
