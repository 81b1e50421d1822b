"""The schema as `metadata.create_all` made it before migrations: users, their own rate
limits, transcripts and agent answers.

Each table is created only where it is missing: on a database made by `create_all` this
revision changes nothing and only records that the database is at the baseline.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_baseline"
down_revision = None
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "users" not in existing:
        op.create_table(
            "users",
            sa.Column("id", sa.String(64), primary_key=True),
            sa.Column("name", sa.String(128), nullable=False, unique=True),
            sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
            sa.Column("created_at", TZ, nullable=False),
        )
    if "transcripts" not in existing:
        op.create_table(
            "transcripts",
            sa.Column("recording_id", sa.String(128), primary_key=True),
            sa.Column("user_id", sa.String(128), nullable=False),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("text", sa.Text, nullable=False),
            sa.Column("language", sa.String(16)),
            sa.Column("segments", sa.JSON, nullable=False),
            sa.Column("duration_s", sa.Float),
            sa.Column("processing_s", sa.Float),
            sa.Column("engine", sa.String(64)),
            sa.Column("model", sa.String(128)),
            sa.Column("agent_id", sa.String(128)),
            sa.Column("pipeline", sa.String(128)),
            sa.Column("session_id", sa.String(128)),
            sa.Column("error_code", sa.String(64)),
            sa.Column("error_message", sa.Text),
            sa.Column("created_at", TZ, nullable=False),
            sa.Column("updated_at", TZ, nullable=False),
        )
        op.create_index(
            "ix_transcripts_user_created", "transcripts", ["user_id", "created_at", "recording_id"]
        )
    if "user_limits" not in existing:
        op.create_table(
            "user_limits",
            sa.Column("user_id", sa.String(64), primary_key=True),
            sa.Column("rate_limit", sa.String(32), nullable=False),
            sa.Column("burst", sa.Integer),
        )
    if "answers" not in existing:
        op.create_table(
            "answers",
            sa.Column("event_id", sa.String(64), primary_key=True),
            sa.Column("recording_id", sa.String(128), nullable=False),
            sa.Column("user_id", sa.String(128), nullable=False),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("agent_id", sa.String(128)),
            sa.Column("pipeline", sa.String(128)),
            sa.Column("output", sa.Text, nullable=False),
            sa.Column("usage", sa.JSON, nullable=False),
            sa.Column("error_code", sa.String(64)),
            sa.Column("error_message", sa.Text),
            sa.Column("created_at", TZ, nullable=False),
        )
        op.create_index("ix_answers_recording_id", "answers", ["recording_id"])


def downgrade() -> None:
    for table in ("answers", "user_limits", "transcripts", "users"):
        op.drop_table(table)
