"""Users and transcripts in SQL: SQLite (WAL) by default, PostgreSQL from `DATABASE_URL`.

One class per job (the connection, users, the projection of events, the reads, each
user's settings, deleting a user's rows); this one
puts them together behind the `Repository` interface.
"""

from __future__ import annotations

from whisp_gateway.repository.forget import SqlForget
from whisp_gateway.repository.projection import SqlProjection
from whisp_gateway.repository.queries import EXPORT_BATCH, SqlQueries
from whisp_gateway.repository.user_settings import SqlSettings
from whisp_gateway.repository.users import SqlUsers


class SqlRepository(SqlUsers, SqlProjection, SqlQueries, SqlSettings, SqlForget):
    """Everything the gateway stores, on one engine."""


__all__ = ["EXPORT_BATCH", "SqlRepository"]
