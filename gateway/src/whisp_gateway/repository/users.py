"""Users and their API tokens (only a token's hash is stored)."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import UTC, datetime

from sqlalchemy import delete, func, insert, select
from sqlalchemy.sql import ColumnElement

from whisp_gateway.repository.engine import Database, aware
from whisp_gateway.repository.models import User
from whisp_gateway.repository.tables import users

TOKEN_PREFIX = "wsp_"  # noqa: S105 (a visible prefix, not a secret)


def hash_token(token: str) -> str:
    """Tokens are 256-bit random strings, so a plain SHA-256 is a safe, fast lookup key."""
    return hashlib.sha256(token.encode()).hexdigest()


class SqlUsers(Database):
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
            User(id=row["id"], name=row["name"], created_at=aware(row["created_at"]))
            if (row)
            else None
        )

    async def count_users(self) -> int:
        async with self.engine.connect() as conn:
            return int((await conn.execute(select(func.count()).select_from(users))).scalar_one())

    async def list_users(self) -> list[User]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(users).order_by(users.c.name))).mappings().all()
        return [User(id=r["id"], name=r["name"], created_at=aware(r["created_at"])) for r in rows]

    async def remove_user(self, name: str) -> bool:
        async with self.engine.begin() as conn:
            result = await conn.execute(delete(users).where(users.c.name == name))
        return bool(result.rowcount)
