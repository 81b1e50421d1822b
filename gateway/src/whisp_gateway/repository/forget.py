"""Deleting one user's rows: everything ("delete everything of mine"), or the transcripts
their retention has run out for. Nothing here crosses users: every statement names one."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select

from whisp_gateway.repository.engine import Database, utc
from whisp_gateway.repository.tables import answers, transcripts, user_settings
from whisp_shared.user_data import ForgottenRows


class SqlForget(Database):
    async def forget(self, user_id: str) -> ForgottenRows:
        """The user's transcripts, answers and settings, in one transaction. Their account
        (`users`, `user_limits`) stays: they can log in and start again with nothing."""
        async with self.engine.begin() as conn:
            gone = [
                (await conn.execute(delete(table).where(table.c.user_id == user_id))).rowcount
                for table in (transcripts, answers, user_settings)
            ]
        return ForgottenRows(transcripts=gone[0], answers=gone[1], settings=gone[2])

    async def forget_before(self, user_id: str, before: datetime) -> int:
        """The user's transcripts made before `before`, with their answers; how many."""
        old = select(transcripts.c.recording_id).where(
            transcripts.c.user_id == user_id, transcripts.c.created_at < utc(before)
        )
        async with self.engine.begin() as conn:
            await conn.execute(
                delete(answers).where(
                    answers.c.user_id == user_id, answers.c.recording_id.in_(old.scalar_subquery())
                )
            )
            result = await conn.execute(
                delete(transcripts).where(
                    transcripts.c.user_id == user_id, transcripts.c.created_at < utc(before)
                )
            )
        return int(result.rowcount)
