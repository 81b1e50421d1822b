"""Each user's own settings (`whisp_shared.user_settings.UserSettings`), one row per user.

A user without a row has the defaults; writing stores the whole settings (PATCH is merged
by the caller first), so a row always holds a valid `UserSettings`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.engine import RowMapping

from whisp_gateway.repository.engine import Database
from whisp_gateway.repository.tables import user_settings
from whisp_shared.user_settings import UserSettings

FIELDS = tuple(UserSettings.model_fields)


class SqlSettings(Database):
    async def get_settings(self, user_id: str) -> UserSettings:
        async with self.engine.connect() as conn:
            row = (
                (
                    await conn.execute(
                        select(user_settings).where(user_settings.c.user_id == user_id)
                    )
                )
                .mappings()
                .first()
            )
        return UserSettings() if row is None else _settings(row)

    async def put_settings(self, user_id: str, settings: UserSettings) -> UserSettings:
        values: dict[str, Any] = {
            **settings.model_dump(mode="json"),
            "updated_at": datetime.now(UTC),
        }
        stmt = self._insert(user_settings).values(user_id=user_id, **values)
        async with self.engine.begin() as conn:
            await conn.execute(stmt.on_conflict_do_update(index_elements=["user_id"], set_=values))
        return settings

    async def retention_policies(self) -> list[tuple[str, UserSettings]]:
        """Every user who asked for audio or transcripts to be deleted after a while."""
        stmt = select(user_settings).where(
            or_(
                user_settings.c.audio_retention_days.is_not(None),
                user_settings.c.transcript_retention_days.is_not(None),
            )
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(stmt)).mappings().all()
        return [(row["user_id"], _settings(row)) for row in rows]


def _settings(row: RowMapping) -> UserSettings:
    """Stored values were valid when written; JSON columns come back as plain lists."""
    return UserSettings.model_validate({k: row[k] for k in FIELDS})
