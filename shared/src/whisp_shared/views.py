"""What a user sees: the stored transcript, and the events that bring it to their screens.

The gateway projects every bus event into the user's stored transcript (status, text,
segments, agent answers, error) and publishes that *snapshot* on the user-events stream.
Clients (the web page, the CLI, the hotkey daemon) render snapshots; they never rebuild
state from raw bus events, and nothing internal (audio URIs, file paths, service names)
is in a snapshot.

Live-only events (`LiveEvent`: partial text while the key is held, an agent's answer as it
streams, an upload's place in the transcription queue) are not stored: they travel on
`whisp:live` (`EventBus.publish_live`) straight to the owner's open pages, without an SSE
id, and are never replayed; the stored snapshot that follows them carries the outcome.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, Self

from pydantic import BaseModel, Field, TypeAdapter, model_validator

from whisp_shared.events import EventBase, Segment, TokenUsage
from whisp_shared.queue import QueuePosition

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
    raw_text: str | None = None
    """The recogniser's own words when the owner's replacements changed them (`text` is
    after the replacements); None when nothing was replaced."""
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
"""What the user-events stream stores and `/api/events` replays (with its stream id)."""
USER_EVENT_ADAPTER: TypeAdapter[UserEvent] = TypeAdapter(UserEvent)


class TranscriptPartial(EventBase):
    """The words decoded so far while the user still holds the key (live only). Text only
    grows from its stable prefix; the final `TranscriptUpdated` supersedes every partial."""

    type: Literal["transcript.partial"] = "transcript.partial"
    text: str
    stable_chars: int = Field(default=0, ge=0)
    """How many characters at the start of `text` will not change any more: a page shows
    them as settled and the rest as tentative."""
    sequence: int = Field(ge=0)
    """Counts up per recording: a page keeps the highest it has seen and drops older ones."""

    @model_validator(mode="after")
    def _prefix_within_text(self) -> Self:
        if self.stable_chars > len(self.text):
            raise ValueError(f"stable_chars {self.stable_chars} > len(text) {len(self.text)}")
        return self


class AnswerDelta(EventBase):
    """The next piece of an agent's answer as it streams (live only); the stored answer in
    the next snapshot is the whole of it and replaces whatever the pieces built.

    How a client builds the text of a recording's answer from its pieces:
    - `run_id` names one attempt of the run. A redelivered or retried run starts again from
      the first word under a new `run_id`: a piece of a new run drops the text built so far,
      and pieces of a run already dropped are ignored from then on (never text twice).
    - Within a run, `sequence` counts up from 0 (across parts): a piece whose sequence is not
      above the last one appended is a duplicate or stale and is ignored.
    - `part` counts up within a run: a piece of a higher part starts a new text, because what
      came before it was not the answer (a pipeline's earlier stage, or an agent's words
      before it called a tool or handed off). `agent_id` is who writes this part.
    """

    type: Literal["answer.delta"] = "answer.delta"
    agent_id: str
    delta: str
    run_id: str = Field(min_length=1, max_length=64)
    """One attempt of the run (see above)."""
    sequence: int = Field(ge=0)
    """Counts up per run: pieces are appended in this order."""
    part: int = Field(default=0, ge=0)
    """Which text of the run this piece grows; a higher one replaces the text shown."""


class RecordingQueued(EventBase):
    """Where the owner's recording waits for a transcription worker, each time that changes
    (live only, from the gateway that accepted it). Counts only: nothing of the other
    recordings that wait. The last one has `queue: None`: a worker took it (its snapshot
    says the rest), or the gateway stopped watching."""

    type: Literal["recording.queued"] = "recording.queued"
    queue: QueuePosition | None


LiveEvent = Annotated[
    TranscriptPartial | AnswerDelta | RecordingQueued, Field(discriminator="type")
]
"""What `whisp:live` carries: to the owner's open pages only, never stored or replayed."""

ClientEvent = Annotated[
    TranscriptUpdated | TranscriptPartial | AnswerDelta | RecordingQueued,
    Field(discriminator="type"),
]
"""Everything `/api/events` sends: stored snapshots (with ids) and live-only events."""
CLIENT_EVENT_ADAPTER: TypeAdapter[ClientEvent] = TypeAdapter(ClientEvent)
