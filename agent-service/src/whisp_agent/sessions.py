"""Conversation memory, created only when a caller names a session.

Two things are kept per (user, session):
- the SDK's `Session` (what the model sees next turn: messages, tool calls), SQLite by
  default, Redis (the bus's server) when several replicas must share it;
- an attributed log (which agent said what, and which pipeline stage), for people: the
  SDK's items do not say which agent produced them.

Keys always include the user id, so two users who pick the same session id never share it.
Nothing touches the filesystem until the first session is opened. A user's sessions can be
listed and forgotten whole (`session_ids`, `forget`): their export and "delete mine".
"""

from __future__ import annotations

import asyncio
import inspect
import sqlite3
import threading
import time
from pathlib import Path
from typing import Literal, Protocol, cast

from agents import SQLiteSession
from agents.extensions.memory import RedisSession
from agents.memory import Session
from pydantic import BaseModel
from redis.asyncio import Redis

from whisp_shared.redis_client import open_redis

HISTORY_PREFIX = "whisp:agents:history:"
SESSION_PREFIX = "whisp:agents:session"
SDK_SESSIONS_TABLE = "agent_sessions"
"""Where the SDK's `SQLiteSession` lists its sessions (its default table name)."""


class Turn(BaseModel):
    """One attributed message of a session."""

    role: Literal["user", "assistant"]
    text: str
    agent_id: str | None = None
    """Who answered (after handoffs: the agent that actually spoke)."""
    target: str | None = None
    """What was asked for: an agent or a pipeline id."""
    stage: int | None = None
    ts: float = 0.0


def session_key(user_id: str, session_id: str) -> str:
    return f"{user_id}:{session_id}"


class SessionStore(Protocol):
    def open(self, user_id: str, session_id: str) -> Session: ...
    async def append(self, user_id: str, session_id: str, turns: list[Turn]) -> None: ...
    async def history(self, user_id: str, session_id: str) -> list[Turn]: ...
    async def session_ids(self, user_id: str) -> list[str]: ...
    async def forget(self, user_id: str, session_id: str) -> None: ...
    async def close(self) -> None: ...


class SQLiteSessions:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def _conn(self) -> sqlite3.Connection:
        with self._lock:
            if self._db is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute(
                    "CREATE TABLE IF NOT EXISTS whisp_turns (id INTEGER PRIMARY KEY, "
                    "session TEXT NOT NULL, body TEXT NOT NULL)"
                )
                db.execute("CREATE INDEX IF NOT EXISTS whisp_turns_s ON whisp_turns (session)")
                self._db = db
            return self._db

    def open(self, user_id: str, session_id: str) -> Session:
        self._conn()
        return SQLiteSession(session_key(user_id, session_id), self.path)

    async def append(self, user_id: str, session_id: str, turns: list[Turn]) -> None:
        key = session_key(user_id, session_id)

        def write() -> None:
            db = self._conn()
            with self._lock:
                db.executemany(
                    "INSERT INTO whisp_turns (session, body) VALUES (?, ?)",
                    [(key, t.model_dump_json()) for t in turns],
                )

        await asyncio.to_thread(write)

    async def history(self, user_id: str, session_id: str) -> list[Turn]:
        key = session_key(user_id, session_id)

        def read() -> list[tuple[str]]:
            db = self._conn()
            with self._lock:
                return db.execute(
                    "SELECT body FROM whisp_turns WHERE session=? ORDER BY id", (key,)
                ).fetchall()

        return [Turn.model_validate_json(body) for (body,) in await asyncio.to_thread(read)]

    async def session_ids(self, user_id: str) -> list[str]:
        """The user's sessions, in the attributed log or only in the SDK's memory (a run
        that failed half way leaves items and no log)."""
        prefix = session_key(user_id, "")

        def read() -> list[str]:
            db = self._conn()
            with self._lock:
                sdk = db.execute(
                    "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?",
                    (SDK_SESSIONS_TABLE,),
                ).fetchone()
                sql = "SELECT session FROM whisp_turns WHERE substr(session, 1, ?) = ?"
                if sdk:
                    sql += (
                        f" UNION SELECT session_id FROM {SDK_SESSIONS_TABLE} "  # noqa: S608 - fixed name
                        "WHERE substr(session_id, 1, ?) = ?"
                    )
                params = (len(prefix), prefix) * (2 if sdk else 1)
                return [key for (key,) in db.execute(sql, params).fetchall()]

        return sorted(key[len(prefix) :] for key in await asyncio.to_thread(read))

    async def forget(self, user_id: str, session_id: str) -> None:
        """Delete the session's attributed log and the SDK's memory of it."""
        key = session_key(user_id, session_id)

        def delete() -> None:
            db = self._conn()
            with self._lock:
                db.execute("DELETE FROM whisp_turns WHERE session=?", (key,))

        await asyncio.to_thread(delete)
        await clear_memory(self, user_id, session_id)

    async def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


class RedisSessions:
    def __init__(self, url: str, ttl_s: int | None) -> None:
        self.url = url
        self.ttl_s = ttl_s
        self._redis: Redis | None = None

    @property
    def redis(self) -> Redis:
        if self._redis is None:  # plain, TLS or Sentinel, as the bus reaches Redis
            self._redis = open_redis(self.url)
        return self._redis

    def open(self, user_id: str, session_id: str) -> Session:
        return RedisSession(
            session_key(user_id, session_id),
            redis_client=self.redis,
            key_prefix=SESSION_PREFIX,
            ttl=self.ttl_s,
        )

    async def append(self, user_id: str, session_id: str, turns: list[Turn]) -> None:
        key = HISTORY_PREFIX + session_key(user_id, session_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.rpush(key, *[t.model_dump_json() for t in turns])
            if self.ttl_s:
                pipe.expire(key, self.ttl_s)
            await pipe.execute()

    async def history(self, user_id: str, session_id: str) -> list[Turn]:
        key = HISTORY_PREFIX + session_key(user_id, session_id)
        return [Turn.model_validate_json(raw) for raw in await self.redis.lrange(key, 0, -1)]

    async def session_ids(self, user_id: str) -> list[str]:
        """The user's sessions, in the attributed log or only in the SDK's memory (its
        session hash names the session: ids may hold colons, so keys are not parsed)."""
        prefix = session_key(user_id, "")
        found = set()
        async for key in self.redis.scan_iter(match=f"{HISTORY_PREFIX}{prefix}*", count=500):
            found.add(key.decode().removeprefix(HISTORY_PREFIX + prefix))
        async for key in self.redis.scan_iter(match=f"{SESSION_PREFIX}:{prefix}*", count=500):
            if await self.redis.type(key) == b"hash":
                named = cast(bytes | None, await self.redis.hget(key, "session_id"))
                if named and named.decode().startswith(prefix):
                    found.add(named.decode().removeprefix(prefix))
        return sorted(found)

    async def forget(self, user_id: str, session_id: str) -> None:
        """Delete the session's attributed log and the SDK's memory of it."""
        await self.redis.delete(HISTORY_PREFIX + session_key(user_id, session_id))
        await clear_memory(self, user_id, session_id)

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None


async def clear_memory(store: SessionStore, user_id: str, session_id: str) -> None:
    """Clear what the SDK keeps of one session, through the SDK's own session API."""
    session = store.open(user_id, session_id)
    try:
        await session.clear_session()
    finally:
        await close_session(session)


async def close_session(session: Session | None) -> None:
    """Release one opened SDK session: SQLite sessions hold connections (sync close); Redis
    ones share the store's client (async close, a no-op for an injected client)."""
    close = getattr(session, "close", None)
    if callable(close):
        result = close()
        if inspect.isawaitable(result):
            await result


def turns_from(
    user_text: str, target: str, answers: list[tuple[str, str, int | None]]
) -> list[Turn]:
    """The user's message, then each (agent_id, text, stage) answer, stamped now."""
    now = time.time()
    return [
        Turn(role="user", text=user_text, target=target, ts=now),
        *(
            Turn(role="assistant", text=text, agent_id=agent, target=target, stage=stage, ts=now)
            for agent, text, stage in answers
        ),
    ]
