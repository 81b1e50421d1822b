"""What the repository returns and accepts: pydantic models, the REST API's shapes too."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from whisp_shared.events import Segment, TokenUsage

Status = Literal["processing", "done", "failed"]


class User(BaseModel):
    id: str
    name: str
    created_at: datetime | None = None


class Answer(BaseModel):
    event_id: str
    status: Literal["done", "failed"]
    agent_id: str | None = None
    pipeline: str | None = None
    output: str = ""
    usage: TokenUsage = Field(default_factory=TokenUsage)
    error_code: str | None = None
    error_message: str | None = None
    created_at: datetime


class Transcript(BaseModel):
    recording_id: str
    status: Status
    text: str = ""
    language: str | None = None
    segments: list[Segment] = Field(default_factory=list)
    duration_s: float | None = None
    processing_s: float | None = None
    engine: str | None = None
    model: str | None = None
    agent_id: str | None = None
    pipeline: str | None = None
    session_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    created_at: datetime
    updated_at: datetime
    answers: list[Answer] = Field(default_factory=list)


class TranscriptQuery(BaseModel):
    """Filters for listing, searching and exporting one user's transcripts."""

    q: str | None = Field(default=None, max_length=200)
    """Words that must appear in the transcript text (case-insensitive)."""
    agent_id: str | None = None
    status: Status | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = Field(default=20, ge=1, le=200)
    cursor: str | None = None
    """Opaque: the `next_cursor` of the previous page (newest first)."""


class TranscriptPage(BaseModel):
    items: list[Transcript]
    next_cursor: str | None = None
