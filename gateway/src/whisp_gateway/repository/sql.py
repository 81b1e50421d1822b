"""Users and transcripts in SQL: SQLite (WAL) by default, PostgreSQL from `DATABASE_URL`.

Writes are upserts keyed by ids the events carry, so a redelivered event changes
nothing, and the order in which the three streams' events arrive does not matter.
Every read takes the caller's `user_id`: there is no query that crosses users.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import and_, delete, event, func, insert, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import RowMapping, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.sql import ColumnElement

from whisp_gateway.repository.models import (
    Answer,
    Transcript,
    TranscriptPage,
    TranscriptQuery,
    User,
)
from whisp_gateway.repository.tables import answers, metadata, transcripts, users
from whisp_shared.events import (
    AgentFailed,
    AgentResponded,
    Event,
    RecordingCompleted,
    TranscriptionFailed,
    TranscriptReady,
)

EXPORT_BATCH = 200
SCHEMA_ATTEMPTS = 5
TOKEN_PREFIX = "wsp_"  # noqa: S105 (a visible prefix, not a secret)


def async_url(url: str) -> str:
    """Accept the URLs people write (`postgresql://`, `sqlite:///`) and pick async drivers."""
    parsed = make_url(url)
    driver = {
        "postgresql": "postgresql+asyncpg",
        "postgres": "postgresql+asyncpg",
        "sqlite": "sqlite+aiosqlite",
    }.get(parsed.drivername, parsed.drivername)
    return parsed.set(drivername=driver).render_as_string(hide_password=False)


def hash_token(token: str) -> str:
    """Tokens are 256-bit random strings, so a plain SHA-256 is a safe, fast lookup key."""
    return hashlib.sha256(token.encode()).hexdigest()


def _aware(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _utc(value: datetime) -> datetime:
    return _aware(value).astimezone(UTC)


class SqlRepository:
    def __init__(self, url: str) -> None:
        self.url = async_url(url)
        self.engine: AsyncEngine = _make_engine(self.url)
        self._insert = (
            postgresql.insert if self.engine.dialect.name == "postgresql" else (sqlite.insert)
        )

    async def create_schema(self) -> None:
        """Create what is missing. Replicas starting together race here; a loser finds the
        tables on its next try (create_all skips what exists)."""
        for attempt in range(1, SCHEMA_ATTEMPTS + 1):
            try:
                async with self.engine.begin() as conn:
                    await conn.run_sync(metadata.create_all)
                return
            except DBAPIError:
                if attempt == SCHEMA_ATTEMPTS:
                    raise
                await asyncio.sleep(0.05 * attempt)

    async def close(self) -> None:
        await self.engine.dispose()

    async def ping(self) -> bool:
        try:
            async with self.engine.connect() as conn:
                await conn.execute(select(1))
        except Exception:  # any failure means "not ready"
            return False
        return True

    # ---- users ------------------------------------------------------------------------

    async def add_user(self, name: str) -> tuple[User, str]:
        """Create a user; the token is returned once and only its hash is stored."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        user = User(id=uuid.uuid4().hex, name=name, created_at=datetime.now(UTC))
        async with self.engine.begin() as conn:
            await conn.execute(
                insert(users).values(
                    id=user.id, name=name, token_hash=hash_token(token), created_at=user.created_at
                )
            )
        return user, token

    async def user_for_token(self, token: str) -> User | None:
        return await self._one_user(users.c.token_hash == hash_token(token))

    async def user_by_id(self, user_id: str) -> User | None:
        return await self._one_user(users.c.id == user_id)

    async def _one_user(self, where: ColumnElement[bool]) -> User | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(users).where(where))).mappings().first()
        return (
            User(id=row["id"], name=row["name"], created_at=_aware(row["created_at"]))
            if (row)
            else None
        )

    async def count_users(self) -> int:
        async with self.engine.connect() as conn:
            return int((await conn.execute(select(func.count()).select_from(users))).scalar_one())

    async def list_users(self) -> list[User]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(users).order_by(users.c.name))).mappings().all()
        return [User(id=r["id"], name=r["name"], created_at=_aware(r["created_at"])) for r in rows]

    async def remove_user(self, name: str) -> bool:
        async with self.engine.begin() as conn:
            result = await conn.execute(delete(users).where(users.c.name == name))
        return bool(result.rowcount)

    # ---- events -----------------------------------------------------------------------

    async def apply(self, event: Event) -> None:
        """Record what an event says about a recording; idempotent and order-independent."""
        now = datetime.now(UTC)
        async with self.engine.begin() as conn:
            if isinstance(event, RecordingCompleted):
                # The recording's own facts win over an outcome that arrived first: its time
                # (the history's order) always, the rest where the outcome did not say.
                origin = {
                    "duration_s": event.duration_s,
                    "agent_id": event.agent_id,
                    "pipeline": event.pipeline,
                    "session_id": event.session_id,
                }
                stmt = self._insert(transcripts).values(
                    recording_id=event.recording_id,
                    user_id=event.user_id,
                    status="processing",
                    text="",
                    segments=[],
                    created_at=_utc(event.created_at),
                    updated_at=now,
                    **origin,
                )
                await conn.execute(
                    stmt.on_conflict_do_update(
                        index_elements=["recording_id"],
                        set_={
                            "created_at": stmt.excluded.created_at,
                            **{
                                k: func.coalesce(transcripts.c[k], stmt.excluded[k]) for k in origin
                            },
                        },
                        where=transcripts.c.user_id == event.user_id,
                    )
                )
            elif isinstance(event, TranscriptReady | TranscriptionFailed):
                await self._upsert_outcome(conn, event, now)
            elif isinstance(event, AgentResponded | AgentFailed):
                await conn.execute(
                    self._insert(answers)
                    .values(**_answer_row(event))
                    .on_conflict_do_nothing(index_elements=["event_id"])
                )

    async def _upsert_outcome(
        self, conn: Any, event: TranscriptReady | TranscriptionFailed, now: datetime
    ) -> None:
        if isinstance(event, TranscriptReady):
            fields: dict[str, Any] = {
                "status": "done",
                "text": event.text,
                "language": event.language,
                "segments": [s.model_dump(mode="json") for s in event.segments],
                "duration_s": event.audio_duration_s,
                "processing_s": event.processing_s,
                "engine": event.engine,
                "model": event.model,
                "error_code": None,
                "error_message": None,
            }
        else:
            fields = {"status": "failed", "error_code": event.code, "error_message": event.message}
        # Before its RecordingCompleted, the outcome's own time and agent stand in.
        agent = (
            {"agent_id": event.agent_id, "pipeline": event.pipeline, "session_id": event.session_id}
            if isinstance(event, TranscriptReady)
            else {}
        )
        stmt = self._insert(transcripts).values(
            recording_id=event.recording_id,
            user_id=event.user_id,
            created_at=_utc(event.created_at),
            updated_at=now,
            **{"text": "", "segments": [], **agent, **fields},
        )
        await conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["recording_id"],
                set_={**fields, "updated_at": now},
                where=transcripts.c.user_id == event.user_id,
            )
        )

    # ---- reads ------------------------------------------------------------------------

    async def get(self, user_id: str, recording_id: str) -> Transcript | None:
        async with self.engine.connect() as conn:
            row = (
                (
                    await conn.execute(
                        select(transcripts).where(
                            transcripts.c.user_id == user_id,
                            transcripts.c.recording_id == recording_id,
                        )
                    )
                )
                .mappings()
                .first()
            )
            if row is None:
                return None
            found = await self._answers_for(conn, user_id, [recording_id])
        return _transcript(row, found.get(recording_id, []))

    async def page(self, user_id: str, query: TranscriptQuery) -> TranscriptPage:
        items = await self._fetch(user_id, query, query.cursor, query.limit + 1)
        more = len(items) > query.limit
        items = items[: query.limit]
        return TranscriptPage(items=items, next_cursor=_cursor(items[-1]) if more else None)

    async def iterate(self, user_id: str, query: TranscriptQuery) -> AsyncIterator[Transcript]:
        """Every match, newest first, fetched in batches: exports never load it all."""
        cursor = query.cursor
        while True:
            batch = await self._fetch(user_id, query, cursor, EXPORT_BATCH)
            for item in batch:
                yield item
            if len(batch) < EXPORT_BATCH:
                return
            cursor = _cursor(batch[-1])

    async def delete(self, user_id: str, recording_id: str) -> bool:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                delete(transcripts).where(
                    transcripts.c.user_id == user_id, transcripts.c.recording_id == recording_id
                )
            )
            await conn.execute(
                delete(answers).where(
                    answers.c.user_id == user_id, answers.c.recording_id == recording_id
                )
            )
        return bool(result.rowcount)

    async def _fetch(
        self, user_id: str, query: TranscriptQuery, cursor: str | None, limit: int
    ) -> list[Transcript]:
        conditions: list[ColumnElement[bool]] = [transcripts.c.user_id == user_id]
        for word in (query.q or "").split():
            pattern = "%" + word.replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_") + "%"
            conditions.append(transcripts.c.text.ilike(pattern, escape="\\"))
        if query.agent_id:
            conditions.append(transcripts.c.agent_id == query.agent_id)
        if query.status:
            conditions.append(transcripts.c.status == query.status)
        if query.since:
            conditions.append(transcripts.c.created_at >= _utc(query.since))
        if query.until:
            conditions.append(transcripts.c.created_at < _utc(query.until))
        if cursor:
            created, recording_id = _parse_cursor(cursor)
            conditions.append(
                tuple_(transcripts.c.created_at, transcripts.c.recording_id)
                < tuple_(_utc(created), recording_id)
            )
        stmt = (
            select(transcripts)
            .where(and_(*conditions))
            .order_by(transcripts.c.created_at.desc(), transcripts.c.recording_id.desc())
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(stmt)).mappings().all()
            found = await self._answers_for(conn, user_id, [r["recording_id"] for r in rows])
        return [_transcript(r, found.get(r["recording_id"], [])) for r in rows]

    async def _answers_for(
        self, conn: Any, user_id: str, recording_ids: list[str]
    ) -> dict[str, list[Answer]]:
        if not recording_ids:
            return {}
        rows = (
            (
                await conn.execute(
                    select(answers)
                    .where(answers.c.user_id == user_id, answers.c.recording_id.in_(recording_ids))
                    .order_by(answers.c.created_at)
                )
            )
            .mappings()
            .all()
        )
        out: dict[str, list[Answer]] = {}
        for r in rows:
            out.setdefault(r["recording_id"], []).append(
                Answer.model_validate({**r, "created_at": _aware(r["created_at"])})
            )
        return out


def _make_engine(url: str) -> AsyncEngine:
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

        return engine
    return create_async_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


def _answer_row(event: AgentResponded | AgentFailed) -> dict[str, Any]:
    common = {
        "event_id": event.event_id,
        "recording_id": event.recording_id,
        "user_id": event.user_id,
        "agent_id": event.agent_id,
        "pipeline": event.pipeline,
        "created_at": _utc(event.created_at),
    }
    if isinstance(event, AgentResponded):
        return {
            **common,
            "status": "done",
            "output": event.output,
            "usage": event.usage.model_dump(),
        }
    return {
        **common,
        "status": "failed",
        "output": "",
        "usage": {},
        "error_code": event.code,
        "error_message": event.message,
    }


def _transcript(row: RowMapping, found: list[Answer]) -> Transcript:
    return Transcript.model_validate(
        {
            **row,
            "created_at": _aware(row["created_at"]),
            "updated_at": _aware(row["updated_at"]),
            "answers": found,
        }
    )


def _cursor(item: Transcript) -> str:
    raw = f"{item.created_at.isoformat()}|{item.recording_id}"
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _parse_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        created, recording_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|", 1)
        return datetime.fromisoformat(created), recording_id
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError("invalid cursor") from exc
