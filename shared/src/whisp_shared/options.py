"""What a caller asks of a recording: defined once, carried by the events, taken by both
upload routes as a form model, and built by the desk clients.

`AgentRoute` is the part that travels on to the agent service (on `TranscriptReady`);
`RecordingOptions` adds what only the recogniser needs; `RecordingForm` is the same options
as both upload routes (gateway and audio service) read them from a multipart form. Empty
form fields mean "not set", so a browser form that sends `agent_id=` asks for no agent
rather than failing.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, Field, field_validator

from whisp_shared.dictation import MAX_REPLACEMENTS, MAX_VOCABULARY, Replacement, Term

NAME_PATTERN = r"^[A-Za-z0-9][\w.:-]*$"
LANGUAGE_PATTERN = r"^[a-z]{2,3}([-_][A-Za-z0-9]{2,8})?$"
MAX_PROMPT_CHARS = 2000


def _unset_if_blank(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


class AgentRoute(BaseModel):
    """Which agent (or pipeline, in which session) answers a recording's transcript."""

    agent_id: str | None = Field(default=None, max_length=64, pattern=NAME_PATTERN)
    pipeline: str | None = Field(default=None, max_length=64, pattern=NAME_PATTERN)
    session_id: str | None = Field(default=None, max_length=128, pattern=NAME_PATTERN)

    @field_validator("agent_id", "pipeline", "session_id", mode="before")
    @classmethod
    def _blank_name_is_unset(cls, value: Any) -> Any:
        return _unset_if_blank(value)

    @property
    def wants_agent(self) -> bool:
        return bool(self.agent_id or self.pipeline)

    def route(self) -> AgentRoute:
        """Just the agent part, e.g. for the transcript that answers a recording."""
        return AgentRoute(
            agent_id=self.agent_id, pipeline=self.pipeline, session_id=self.session_id
        )


class RecordingOptions(AgentRoute):
    """What the caller asks of the transcription (and of an agent), for any recording."""

    language: str | None = Field(default=None, max_length=16, pattern=LANGUAGE_PATTERN)
    """ISO 639 code such as `en` or `pt-BR`; None lets the engine decide."""
    prompt: str | None = Field(default=None, max_length=MAX_PROMPT_CHARS)
    """Spelling hints for the recogniser (names, jargon)."""
    word_timestamps: bool = False
    vocabulary: list[Term] = Field(default_factory=list, max_length=MAX_VOCABULARY)
    """The owner's own words (names, jargon), resolved by the gateway from their settings:
    the worker makes them the recogniser's prompt (`whisp_shared.dictation`)."""
    replacements: list[Replacement] = Field(default_factory=list, max_length=MAX_REPLACEMENTS)
    """Applied by the worker to the recognised text before any agent sees it."""
    keep_audio: bool = True
    """False: the audio service deletes the audio once the transcript is stored."""

    @field_validator("language", "prompt", mode="before")
    @classmethod
    def _blank_text_is_unset(cls, value: Any) -> Any:
        return _unset_if_blank(value)

    def options(self) -> RecordingOptions:
        """Just the options (an event that includes them has more fields)."""
        return RecordingOptions.model_validate(
            self.model_dump(include=set(RecordingOptions.model_fields))
        )

    def as_form(self) -> dict[str, str | list[str]]:
        """Multipart form fields for an upload route (unset ones left out). A list is one
        field per item, as forms repeat a name: a term as it is, a replacement as a JSON
        object (the audio service's `UploadForm` parses those back)."""
        out: dict[str, str | list[str]] = {}
        for key, value in self.options().model_dump(exclude_none=True).items():
            if isinstance(value, bool):
                out[key] = "true" if value else "false"
            elif isinstance(value, list):
                if value:
                    out[key] = [v if isinstance(v, str) else json.dumps(v) for v in value]
            else:
                out[key] = str(value)
        return out


class RecordingForm(RecordingOptions):
    """`RecordingOptions` read from a multipart form, as `as_form` writes them: a form
    repeats `replacements` with a JSON object each. Text that is not a JSON object is
    refused by the model as any bad field is (422)."""

    @field_validator("replacements", mode="before")
    @classmethod
    def _replacements_from_form(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        return [_json_or_text(item) if isinstance(item, str) else item for item in value]


def _json_or_text(item: str) -> Any:
    try:
        return json.loads(item)
    except ValueError:
        return item
