"""What the repository returns and accepts besides the user-facing transcript
(`whisp_shared.views.Transcript`): pydantic models, the REST API's shapes too."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from whisp_shared.views import Status, Transcript


class User(BaseModel):
    id: str
    name: str
    created_at: datetime | None = None
    rate_limit: str | None = Field(default=None, exclude=True)
    """This user's own rate (`whisp users add --rate-limit`), e.g. a service account's;
    None: the gateway's `web.rate_limit`. Server-side only: never in an answer."""
    rate_burst: int | None = Field(default=None, exclude=True)


class TranscriptQuery(BaseModel):
    """Filters for listing, searching and exporting one user's transcripts."""

    q: str | None = Field(default=None, max_length=200)
    """Words that must appear in the transcript text, final or as recognised
    (case-insensitive)."""
    agent_id: str | None = Field(default=None, max_length=64)
    status: Status | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = Field(default=20, ge=1, le=200)
    cursor: str | None = None
    """Opaque: the `next_cursor` of the previous page (newest first)."""


class TranscriptPage(BaseModel):
    items: list[Transcript]
    next_cursor: str | None = None
