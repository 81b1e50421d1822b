"""The service's own SQLite file: token usage per run and agent, and users' notes.

One small file under `agents.data_dir`, opened at start-up. Writes are tiny and rare next to
a model call, so one connection behind a lock, used from a worker thread, is plenty; with
several replicas each keeps its own file (usage is also exported to Prometheus, which is
where totals across replicas are read).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel

_SCHEMA = """
CREATE TABLE IF NOT EXISTS usage (
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    user_id TEXT NOT NULL,
    session_id TEXT,
    run_id TEXT NOT NULL,
    target TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    requests INTEGER NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cost_usd REAL
);
CREATE INDEX IF NOT EXISTS usage_user ON usage (user_id, ts);
CREATE INDEX IF NOT EXISTS usage_session ON usage (session_id);
CREATE INDEX IF NOT EXISTS usage_ts ON usage (ts);
CREATE TABLE IF NOT EXISTS notes (
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    user_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    text TEXT NOT NULL,
    run_key TEXT,
    UNIQUE (user_id, run_key, kind, text)
);
"""


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


class Store:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()
        self._closed = False

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._db.close()

    def _run(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    async def record_usage(self, rows: list[UsageRow]) -> None:
        def write() -> None:
            with self._lock:
                self._db.executemany(
                    "INSERT INTO usage (ts, user_id, session_id, run_id, target, agent_id, "
                    "provider, model, requests, input_tokens, output_tokens, cost_usd) "
                    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    [
                        (time.time(), r.user_id, r.session_id, r.run_id, r.target, r.agent_id,
                         r.provider, r.model, r.requests, r.input_tokens, r.output_tokens,
                         r.cost_usd)
                        for r in rows
                    ],
                )  # fmt: skip

        await asyncio.to_thread(write)

    async def usage_totals(
        self, by: str, user_id: str | None = None, session_id: str | None = None
    ) -> list[UsageTotal]:
        """Totals grouped by `agent`, `session` or `user`, optionally for one user/session."""
        column = {"agent": "agent_id", "session": "session_id", "user": "user_id"}[by]
        where, params = [], []
        if user_id is not None:
            where.append("user_id = ?")
            params.append(user_id)
        if session_id is not None:
            where.append("session_id = ?")
            params.append(session_id)
        sql = (
            f"SELECT COALESCE({column}, ''), SUM(requests), SUM(input_tokens), "  # noqa: S608 - column from a fixed map
            "SUM(output_tokens), SUM(cost_usd), COUNT(DISTINCT run_id) FROM usage "
            f"{'WHERE ' + ' AND '.join(where) if where else ''} GROUP BY 1 ORDER BY 1"
        )
        rows = await asyncio.to_thread(self._run, sql, params)
        return [
            UsageTotal(key=k, requests=r, input_tokens=i, output_tokens=o, cost_usd=c, runs=n)
            for k, r, i, o, c, n in rows
        ]

    def recent_sessions(self, since: float, limit: int) -> tuple[list[SessionUsage], int]:
        """The `limit` sessions whose last run is newest, among those with a run since
        `since`, with their totals over all time; and how many such sessions there are.

        Synchronous: a Prometheus scrape calls it (two indexed reads of the recent rows).
        A closed store has none (a scrape may outlive the service's store in tests)."""
        active = (
            "SELECT user_id, session_id, MAX(ts) AS last FROM usage "
            "WHERE ts >= ? AND session_id IS NOT NULL GROUP BY user_id, session_id"
        )
        with self._lock:
            if self._closed:
                return [], 0
            (count,) = self._db.execute(f"SELECT COUNT(*) FROM ({active})", (since,)).fetchone()  # noqa: S608 - fixed text
            rows = self._db.execute(
                f"WITH recent AS ({active} ORDER BY last DESC LIMIT ?) "  # noqa: S608 - fixed text
                "SELECT r.user_id, r.session_id, SUM(u.requests), SUM(u.input_tokens), "
                "SUM(u.output_tokens), SUM(u.cost_usd), r.last FROM recent r JOIN usage u "
                "ON u.user_id = r.user_id AND u.session_id = r.session_id "
                "GROUP BY r.user_id, r.session_id ORDER BY r.last DESC",
                (since, limit),
            ).fetchall()
        sessions = [
            SessionUsage(user_id=u, session_id=s, requests=r, input_tokens=i, output_tokens=o,
                         cost_usd=c, last_ts=ts)
            for u, s, r, i, o, c, ts in rows
        ]  # fmt: skip
        return sessions, int(count)

    async def add(self, user_id: str, kind: str, text: str, run_key: str | None) -> int:
        """Save a note; the same note from a redelivered run (same run_key) is saved once."""

        def write() -> int:
            with self._lock:
                self._db.execute(
                    "INSERT OR IGNORE INTO notes (ts, user_id, kind, text, run_key) "
                    "VALUES (?,?,?,?,?)",
                    (time.time(), user_id, kind, text, run_key),
                )
                row = self._db.execute(
                    "SELECT id FROM notes WHERE user_id=? AND kind=? AND text=? "
                    "AND run_key IS ? ORDER BY id DESC LIMIT 1",
                    (user_id, kind, text, run_key),
                ).fetchone()
                return int(row[0])

        return await asyncio.to_thread(write)

    async def notes(self, user_id: str, limit: int = 100) -> list[Note]:
        rows = await asyncio.to_thread(
            self._run,
            "SELECT id, kind, text, ts FROM notes WHERE user_id=? ORDER BY id DESC LIMIT ?",
            (user_id, limit),
        )
        return [Note(id=i, kind=k, text=t, ts=ts) for i, k, t, ts in rows]

    async def user_records(self, user_id: str) -> tuple[list[Note], list[StoredUsage]]:
        """Every note and usage row of one user, oldest first (their export)."""
        notes = await asyncio.to_thread(
            self._run,
            "SELECT id, kind, text, ts FROM notes WHERE user_id=? ORDER BY id",
            (user_id,),
        )
        usage = await asyncio.to_thread(
            self._run,
            "SELECT ts, session_id, run_id, target, agent_id, provider, model, requests, "
            "input_tokens, output_tokens, cost_usd FROM usage WHERE user_id=? ORDER BY id",
            (user_id,),
        )
        columns = ("ts", "session_id", "run_id", "target", "agent_id", "provider", "model",
                   "requests", "input_tokens", "output_tokens", "cost_usd")  # fmt: skip
        return (
            [Note(id=i, kind=k, text=t, ts=ts) for i, k, t, ts in notes],
            [StoredUsage(user_id=user_id, **dict(zip(columns, row, strict=True))) for row in usage],
        )

    async def forget_user(self, user_id: str) -> tuple[int, int]:
        """Delete every note and usage row of one user: (notes, usage rows) deleted."""

        def delete() -> tuple[int, int]:
            with self._lock:
                notes = self._db.execute("DELETE FROM notes WHERE user_id=?", (user_id,))
                usage = self._db.execute("DELETE FROM usage WHERE user_id=?", (user_id,))
                return notes.rowcount, usage.rowcount

        return await asyncio.to_thread(delete)
