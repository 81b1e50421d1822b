"""The gateway's tables, in SQLAlchemy Core so one schema serves SQLite and PostgreSQL.

This is the schema as the code reads it; the database gets there through the migrations
(`repository/migrations`): a change here needs a revision there.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

users = Table(
    "users",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

transcripts = Table(
    "transcripts",
    metadata,
    Column("recording_id", String(128), primary_key=True),
    Column("user_id", String(128), nullable=False),
    Column("status", String(16), nullable=False),  # processing | done | failed
    Column("text", Text, nullable=False, default=""),
    Column("raw_text", Text),  # the recogniser's text when replacements changed it
    Column("language", String(16)),
    Column("segments", JSON, nullable=False, default=list),
    Column("duration_s", Float),
    Column("processing_s", Float),
    Column("engine", String(64)),
    Column("model", String(128)),
    Column("agent_id", String(128)),
    Column("pipeline", String(128)),
    Column("session_id", String(128)),
    Column("error_code", String(64)),
    Column("error_message", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_transcripts_user_created", "user_id", "created_at", "recording_id"),
)

user_limits = Table(
    "user_limits",
    metadata,
    # Its own table, so `create_all` adds it to a database made before it existed.
    Column("user_id", String(64), primary_key=True),
    Column("rate_limit", String(32), nullable=False),  # "N/second|minute|hour|day"
    Column("burst", Integer),
)

answers = Table(
    "answers",
    metadata,
    Column("event_id", String(64), primary_key=True),
    # No foreign key: an answer may be persisted before its transcript (two streams).
    Column("recording_id", String(128), nullable=False, index=True),
    Column("user_id", String(128), nullable=False),
    Column("status", String(16), nullable=False),  # done | failed
    Column("agent_id", String(128)),
    Column("pipeline", String(128)),
    Column("output", Text, nullable=False, default=""),
    Column("usage", JSON, nullable=False, default=dict),
    Column("error_code", String(64)),
    Column("error_message", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

user_settings = Table(
    "user_settings",
    metadata,
    # No row: the defaults (`UserSettings()`). Retention has columns of its own so the
    # sweep finds the users it concerns without reading everyone's lists.
    Column("user_id", String(128), primary_key=True),
    Column("vocabulary", JSON, nullable=False, default=list),
    Column("replacements", JSON, nullable=False, default=list),
    Column("default_agent", String(64)),
    Column("language", String(16)),
    Column("keep_audio", Boolean, nullable=False, default=True),
    Column("audio_retention_days", Integer),
    Column("transcript_retention_days", Integer),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
