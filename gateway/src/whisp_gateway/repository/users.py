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
from whisp_gateway.repository.tables import user_limits, users

TOKEN_PREFIX = "wsp_"  # noqa: S105 (a visible prefix, not a secret)


def hash_token(token: str) -> str:
    """Tokens are 256-bit random strings, so a plain SHA-256 is a safe, fast lookup key."""
    return hashlib.sha256(token.encode()).hexdigest()


class SqlUsers(Database):
    async def add_user(
        self, name: str, rate_limit: str | None = None, rate_burst: int | None = None
    ) -> tuple[User, str]:
        """Create a user; the token is returned once and only its hash is stored."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        user = User(
            id=uuid.uuid4().hex,
            name=name,
            created_at=datetime.now(UTC),
            rate_limit=rate_limit,
            rate_burst=rate_burst,
        )
        async with self.engine.begin() as conn:
            await conn.execute(
                insert(users).values(
                    id=user.id, name=name, token_hash=hash_token(token), created_at=user.created_at
                )
            )
            if rate_limit is not None:
                await conn.execute(
                    insert(user_limits).values(
                        user_id=user.id, rate_limit=rate_limit, burst=rate_burst
                    )
                )
        return user, token

    async def user_for_token(self, token: str) -> User | None:
        return await self._one_user(users.c.token_hash == hash_token(token))

    async def user_by_id(self, user_id: str) -> User | None:
        return await self._one_user(users.c.id == user_id)

    async def _one_user(self, where: ColumnElement[bool]) -> User | None:
        """One query per request: the user and their own limit, if any."""
        stmt = (
            select(users, user_limits.c.rate_limit, user_limits.c.burst)
            .outerjoin(user_limits, user_limits.c.user_id == users.c.id)
            .where(where)
        )
        async with self.engine.connect() as conn:
            row = (await conn.execute(stmt)).mappings().first()
        if row is None:
            return None
        return User(
            id=row["id"],
            name=row["name"],
            created_at=aware(row["created_at"]),
            rate_limit=row["rate_limit"],
            rate_burst=row["burst"],
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
            ids = select(users.c.id).where(users.c.name == name).scalar_subquery()
            await conn.execute(delete(user_limits).where(user_limits.c.user_id == ids))
            result = await conn.execute(delete(users).where(users.c.name == name))
        return bool(result.rowcount)
