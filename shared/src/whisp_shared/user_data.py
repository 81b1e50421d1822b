"""What the gateway asks of the other services when a user exports or deletes their data.

The gateway owns the user and their settings; the audio service owns the audio and the
agent service owns agent sessions, notes and usage rows. Each answers for one user (the
caller header, `whisp_shared.caller`), never for another, so "everything of mine" is the
gateway's rows plus these answers.

Routes (service token + `X-Whisp-User`):
- audio service `DELETE /recordings?before=<ISO 8601>` → `AudioPurged`: that user's audio
  recorded before the time (all of it without `before`): retention and "delete mine".
- agent service `GET /me/data` → `AgentData`, `DELETE /me/data` → `AgentDataDeleted`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

AUDIO_PURGE_PATH = "/recordings"
AGENT_DATA_PATH = "/me/data"


class AudioPurged(BaseModel):
    deleted: int = Field(ge=0)
    """Recordings whose audio is gone."""
    freed_bytes: int = Field(ge=0)


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
