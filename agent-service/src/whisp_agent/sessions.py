"""Conversation memory, created only when a caller names a session.

Two things are kept per (user, session):
- the SDK's `Session` (what the model sees next turn: messages, tool calls), SQLite by
  default, Redis (the bus's server) when several replicas must share it;
- an attributed log (which agent said what, and which pipeline stage), for people: the
  SDK's items do not say which agent produced them.

Keys always include the user id, so two users who pick the same session id never share it.
Nothing touches the filesystem until the first session is opened.
"""

from __future__ import annotations

import asyncio
import inspect
import sqlite3
import threading
import time
from pathlib import Path
from typing import Literal, Protocol

from agents import SQLiteSession
from agents.extensions.memory import RedisSession
from agents.memory import Session
from pydantic import BaseModel
from redis.asyncio import Redis

HISTORY_PREFIX = "whisp:agents:history:"
SESSION_PREFIX = "whisp:agents:session"


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
        if self._redis is None:
            self._redis = Redis.from_url(self.url)
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

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None


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
