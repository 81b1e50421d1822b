"""Typed, versioned events that travel between services on Redis Streams.

Every event is validated where it is published and again where it is read, so a
producer bug surfaces as a clear validation error instead of a silent drop.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from whisp_shared.options import AgentRoute, RecordingOptions

SCHEMA_VERSION = 1


def new_id() -> str:
    return uuid.uuid4().hex


def utc_now() -> datetime:
    return datetime.now(UTC)


class EventBase(BaseModel):
    """Fields every event carries, so any consumer can route, trace and dedupe it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int = SCHEMA_VERSION
    event_id: str = Field(default_factory=new_id)
    recording_id: str = Field(min_length=1, max_length=128)
    user_id: str = Field(min_length=1, max_length=128)
    trace_id: str = Field(default_factory=new_id)
    created_at: datetime = Field(default_factory=utc_now)

    def follow_up(self) -> dict[str, str]:
        """Identity fields a reaction to this event inherits (same recording, user, trace)."""
        return {
            "recording_id": self.recording_id,
            "user_id": self.user_id,
            "trace_id": self.trace_id,
        }


class FailureFields(BaseModel):
    """What a person (or a program) needs to act on a failure."""

    code: str = Field(min_length=1, max_length=64)
    message: str
    retryable: bool = False


class RecordingCompleted(EventBase, RecordingOptions):
    """Audio is stored and ready to transcribe; the bytes stay behind `audio_uri`. The
    caller's options ride along unchanged (`RecordingOptions`, flat on the wire)."""

    type: Literal["recording.completed"] = "recording.completed"
    audio_uri: str
    content_type: str = "audio/wav"
    duration_s: float | None = Field(default=None, ge=0)


class Word(BaseModel):
    model_config = ConfigDict(frozen=True)

    start: float
    end: float
    word: str
    probability: float | None = None


class Segment(BaseModel):
    model_config = ConfigDict(frozen=True)

    start: float
    end: float
    text: str
    words: list[Word] | None = None


class LiveRecordingStarted(EventBase, RecordingOptions):
    """A user started speaking into a live session: its audio follows on
    `live_audio.live_audio_stream(recording_id)` until a commit (or cancel) entry. A
    transcription worker takes it, publishes partial text while it lasts and the
    `TranscriptReady` at commit."""

    type: Literal["recording.live"] = "recording.live"
    max_duration_s: float = Field(gt=0)
    """The audio service ends the recording (as a commit) at this length."""


class TranscriptReady(EventBase, AgentRoute):
    type: Literal["transcript.ready"] = "transcript.ready"
    text: str
    """What the user said, after their replacements (`RecordingOptions.replacements`)."""
    raw_text: str | None = None
    """The recogniser's own text when replacements changed it, else None."""
    is_empty: bool = False
    language: str | None = None
    segments: list[Segment] = Field(default_factory=list)
    engine: str
    model: str
    audio_duration_s: float = Field(ge=0)
    processing_s: float = Field(ge=0)
    real_time_factor: float = Field(ge=0)
    live: bool = False
    """Decoded while it was spoken (a live recording): `processing_s` is the wait after the
    release, not a pass over the audio, so queue estimates leave it out."""


class TranscriptionFailed(EventBase, FailureFields):
    type: Literal["transcription.failed"] = "transcription.failed"


class TokenUsage(BaseModel):
    model_config = ConfigDict(frozen=True)

    requests: int = Field(default=0, ge=0)
    input_tokens: int = Field(default=0, ge=0)
    output_tokens: int = Field(default=0, ge=0)
    total_tokens: int = Field(default=0, ge=0)


class AgentResponded(EventBase):
    type: Literal["agent.responded"] = "agent.responded"
    agent_id: str
    output: str
    pipeline: str | None = None
    session_id: str | None = None
    usage: TokenUsage = Field(default_factory=TokenUsage)


class AgentFailed(EventBase, FailureFields):
    type: Literal["agent.failed"] = "agent.failed"
    agent_id: str | None = None
    pipeline: str | None = None


Event = Annotated[
    RecordingCompleted
    | LiveRecordingStarted
    | TranscriptReady
    | TranscriptionFailed
    | AgentResponded
    | AgentFailed,
    Field(discriminator="type"),
]
EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


def parse_event(data: bytes | str) -> Event:
    """Validate JSON into the concrete event type named by its `type` field."""
    return EVENT_ADAPTER.validate_json(data)
