"""What the gateway asks of the other services when a user exports or deletes their data.

The gateway owns the user and their settings; the audio service owns the audio and the
agent service owns agent sessions, notes and usage rows. Each answers for one user (the
caller header, `whisp_shared.caller`), never for another, so "everything of mine" is the
gateway's rows plus these answers.

Routes (service token + `X-Whisp-User`):
- audio service `DELETE /recordings?before=<ISO 8601>` → `AudioPurged`: that user's audio
  recorded before the time (all of it without `before`): retention and "delete mine".
- agent service `GET /me/data` → `AgentData`, `DELETE /me/data` → `AgentDataDeleted`.

`keep_audio: false` (`RecordingOptions`) is the audio service's own business once the
recording is stored: it deletes the audio when the transcript is ready, and says so on
`streams.AUDIO_KEPT` (`AudioKept`) in the rare case it gives up.
"""

from __future__ import annotations

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


class AudioKept(EventBase, FailureFields):
    """The audio service gave up deleting a `keep_audio: false` recording's audio after its
    transcript (the bus's delivery budget ran out): the audio stays until retention or a
    purge removes it. Only ids and the reason: no transcript text is copied here."""

    type: Literal["audio.kept"] = "audio.kept"
