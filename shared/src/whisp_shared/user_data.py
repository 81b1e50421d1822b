"""What the gateway asks of the other services when a user exports or deletes their data.

The gateway owns the user and their settings; the audio service owns the audio and the
agent service owns agent sessions, notes and usage rows. Each answers for one user (the
caller header, `whisp_shared.caller`), never for another, so "everything of mine" is the
gateway's rows plus these answers.

Routes (service token + `X-Whisp-User`):
- audio service `DELETE /recordings?before=<ISO 8601>` → `AudioPurged`: that user's audio
  recorded before the time (all of it without `before`): retention and "delete mine".
- agent service `GET /me/data` → `AgentData`, `DELETE /me/data` → `AgentDataDeleted`.

And what the gateway answers its own clients (the page, `whisp me`): `ExportFinished`, the
last line of `GET /api/me/export`, `DataDeleted` for `DELETE /api/me/data`, and
`AudioUsage` for `GET /api/me/usage`.

`keep_audio: false` (`RecordingOptions`) is the audio service's own business once the
recording is stored: it deletes the audio when the transcript is ready, and says so on
`streams.AUDIO_KEPT` (`AudioKept`) in the rare case it gives up.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from whisp_shared.events import EventBase, FailureFields

AUDIO_PURGE_PATH = "/recordings"
AGENT_DATA_PATH = "/me/data"


class AudioPurged(BaseModel):
    deleted: int = Field(ge=0)
    """Recordings removed (their audio, and what the service knew of them)."""
    freed_bytes: int = Field(ge=0)
    """Bytes of audio freed (the originals and the WAVs)."""


class AgentData(BaseModel):
    """Everything the agent service keeps for one user, as plain JSON objects."""

    sessions: list[dict[str, Any]] = Field(default_factory=list)
    """Each session with its items (the conversation), as `GET /sessions/{id}` shows it."""
    notes: list[dict[str, Any]] = Field(default_factory=list)
    usage: list[dict[str, Any]] = Field(default_factory=list)


class AgentDataDeleted(BaseModel):
    sessions: int = Field(ge=0)
    notes: int = Field(ge=0)
    usage_rows: int = Field(ge=0)


class AudioUsage(BaseModel):
    """`GET /api/me/usage`: the caller's audio today (a UTC day) against their quota."""

    day: date
    """The UTC day counted."""
    used_s: float = Field(ge=0)
    """Seconds of audio accepted today, on every path (uploads, `/v1`, streaming, Wyoming)."""
    quota_s: float | None = Field(ge=0)
    """Seconds a day this user may send; null: unlimited."""
    remaining_s: float | None = Field(ge=0)
    """What is left today (0 once used up: the next recording is refused); null: unlimited."""
    resets_at: datetime
    """The next UTC midnight, when `used_s` starts again from 0."""


class ExportFinished(BaseModel):
    """The export's last line: what it holds. An export without it was cut off, and one
    whose counts differ from the lines before it lost some on the way."""

    type: Literal["end"] = "end"
    transcripts: int = Field(ge=0)
    agent_sessions: int = Field(ge=0)
    agent_notes: int = Field(ge=0)
    agent_usage: int = Field(ge=0)

    def __str__(self) -> str:
        return (
            f"{self.transcripts} transcript(s), {self.agent_sessions} agent session(s), "
            f"{self.agent_notes} agent note(s), {self.agent_usage} usage row(s)"
        )


class ForgottenRows(BaseModel):
    """What "delete everything of mine" removed from the gateway's own tables."""

    transcripts: int = Field(ge=0)
    answers: int = Field(ge=0)
    settings: int = Field(ge=0)


class RedisForgotten(BaseModel):
    keys: int = Field(ge=0)
    """Per-user keys deleted (rate-limit buckets, daily audio-quota counters)."""
    events: int = Field(ge=0)
    """Stored snapshots of the user's transcripts removed from `whisp:user-events`."""


class DataDeleted(BaseModel):
    """What `DELETE /api/me/data` removed, per store (all zero on a repeat)."""

    audio: AudioPurged
    agents: AgentDataDeleted
    gateway: ForgottenRows
    redis: RedisForgotten

    def __str__(self) -> str:
        rows, audio, agents = self.gateway, self.audio, self.agents
        return (
            f"{rows.transcripts} transcript(s), {rows.answers} answer(s), {rows.settings} "
            f"settings; audio of {audio.deleted} recording(s) ({audio.freed_bytes:,} bytes); "
            f"{agents.sessions} agent session(s), {agents.notes} note(s), {agents.usage_rows} "
            f"usage row(s); {self.redis.keys} rate-limit and quota key(s), "
            f"{self.redis.events} stored event(s)"
        )


class AudioKept(EventBase, FailureFields):
    """The audio service gave up deleting a `keep_audio: false` recording's audio after its
    transcript (the bus's delivery budget ran out): the audio stays until retention or a
    purge removes it. Only ids and the reason: no transcript text is copied here."""

    type: Literal["audio.kept"] = "audio.kept"
