"""What a user sees: the stored transcript, and the events that bring it to their screens.

The gateway projects every bus event into the user's stored transcript (status, text,
segments, agent answers, error) and publishes that *snapshot* on the user-events stream.
Clients (the web page, the CLI, the hotkey daemon) render snapshots; they never rebuild
state from raw bus events, and nothing internal (audio URIs, file paths, service names)
is in a snapshot. Live-only events (partial text, answer deltas) join `UserEvent` here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, TypeAdapter

from whisp_shared.events import EventBase, Segment, TokenUsage

Status = Literal["processing", "done", "failed"]


class Answer(BaseModel):
    """One agent (or pipeline) answer to a transcript, or its failure."""

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
    """A recording as its owner sees it, from upload to the last agent answer."""

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

    @property
    def wants_agent(self) -> bool:
        return bool(self.agent_id or self.pipeline)

    @property
    def settled(self) -> bool:
        """Nothing more will happen: failed, or transcribed and answered if an agent was
        asked (an empty transcript gets no answer)."""
        if self.status != "done":
            return self.status == "failed"
        return not self.wants_agent or bool(self.answers) or not self.text.strip()


class TranscriptUpdated(EventBase):
    """The owner's transcript after the gateway stored an event about it. Its `event_id` and
    `created_at` are that stored event's: one snapshot per stored event, so clients can tell
    a repeat from a new change (and ops can measure store → forward lag)."""

    type: Literal["transcript.updated"] = "transcript.updated"
    transcript: Transcript


UserEvent = TranscriptUpdated
"""Everything `/api/events` sends (a discriminated union once live-only events join)."""
USER_EVENT_ADAPTER: TypeAdapter[UserEvent] = TypeAdapter(UserEvent)
