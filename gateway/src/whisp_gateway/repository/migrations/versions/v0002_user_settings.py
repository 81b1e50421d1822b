"""Each user's own settings (issue 16), and the recogniser's raw text beside the final one.

Revision ID: 0002_user_settings
Revises: 0001_baseline
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_user_settings"
down_revision = "0001_baseline"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("transcripts", sa.Column("raw_text", sa.Text))
    op.create_table(
        "user_settings",
        sa.Column("user_id", sa.String(128), primary_key=True),
        sa.Column("vocabulary", sa.JSON, nullable=False),
        sa.Column("replacements", sa.JSON, nullable=False),
        sa.Column("default_agent", sa.String(64)),
        sa.Column("language", sa.String(16)),
        sa.Column("keep_audio", sa.Boolean, nullable=False),
        sa.Column("audio_retention_days", sa.Integer),
        sa.Column("transcript_retention_days", sa.Integer),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("user_settings")
    with op.batch_alter_table("transcripts") as batch:
        batch.drop_column("raw_text")
