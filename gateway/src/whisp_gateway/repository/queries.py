"""Reading one user's transcripts: by id, a page at a time, or all of them for an export.

Every read takes the caller's `user_id`: there is no query that crosses users. Pages are
newest first, with an opaque cursor (created_at, recording_id) that stays stable while
new recordings arrive.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, or_, select, tuple_
from sqlalchemy.engine import RowMapping
from sqlalchemy.sql import ColumnElement

from whisp_gateway.repository.engine import Database, aware, utc
from whisp_gateway.repository.models import TranscriptPage, TranscriptQuery
from whisp_gateway.repository.tables import answers, transcripts
from whisp_shared.views import Answer, Transcript

EXPORT_BATCH = 200


class SqlQueries(Database):
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
            conditions.append(
                or_(
                    transcripts.c.text.ilike(pattern, escape="\\"),
                    transcripts.c.raw_text.ilike(pattern, escape="\\"),
                )
            )
        if query.agent_id:
            conditions.append(transcripts.c.agent_id == query.agent_id)
        if query.status:
            conditions.append(transcripts.c.status == query.status)
        if query.since:
            conditions.append(transcripts.c.created_at >= utc(query.since))
        if query.until:
            conditions.append(transcripts.c.created_at < utc(query.until))
        if cursor:
            created, recording_id = _parse_cursor(cursor)
            conditions.append(
                tuple_(transcripts.c.created_at, transcripts.c.recording_id)
                < tuple_(utc(created), recording_id)
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
                Answer.model_validate({**r, "created_at": aware(r["created_at"])})
            )
        return out


def _transcript(row: RowMapping, found: list[Answer]) -> Transcript:
    return Transcript.model_validate(
        {
            **row,
            "created_at": aware(row["created_at"]),
            "updated_at": aware(row["updated_at"]),
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
