"""A user's own settings: the shape `GET/PUT/PATCH /api/me/settings` speak, the web page's
settings panel edits and `whisp me settings` prints.

The gateway stores them per user and resolves them into every recording's options when it
accepts one (`RecordingOptions.vocabulary`, `.replacements`, `.keep_audio`, `.language`),
so no other service ever looks a user's settings up. Validation is strict on purpose: a
number where a string belongs, a field nobody defined or a list past its bound is the
caller's mistake (422), never guessed at.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from whisp_shared.dictation import (
    MAX_REPLACEMENTS,
    MAX_SPOKEN_CHARS,
    MAX_TERM_CHARS,
    MAX_VOCABULARY,
    MAX_WRITTEN_CHARS,
    Replacement,
    Term,
    apply_replacements,
)
from whisp_shared.options import LANGUAGE_PATTERN, NAME_PATTERN

MAX_RETENTION_DAYS = 3650
"""Ten years: a bound, so a typo cannot ask for a retention no sweep ever reaches."""
MAX_PREVIEW_CHARS = 5000

RetentionDays = Annotated[int, Field(ge=1, le=MAX_RETENTION_DAYS)]
AgentName = Annotated[str, Field(min_length=1, max_length=64, pattern=NAME_PATTERN)]
Language = Annotated[str, Field(max_length=16, pattern=LANGUAGE_PATTERN)]
Vocabulary = Annotated[list[Term], Field(max_length=MAX_VOCABULARY)]
Replacements = Annotated[list[Replacement], Field(max_length=MAX_REPLACEMENTS)]

STRICT = ConfigDict(extra="forbid", strict=True)


def unique_terms(terms: list[str]) -> list[str]:
    """Each term once (the first spelling wins): a repeated word only wastes the prompt."""
    seen: set[str] = set()
    out = []
    for term in terms:
        if term.casefold() not in seen:
            seen.add(term.casefold())
            out.append(term)
    return out


def phrase_key(rule: Replacement) -> str:
    """Rules for the same phrase (ignoring case and spacing) are the same rule."""
    return " ".join(rule.spoken.casefold().split())


def _one_rule_per_phrase(rules: list[Replacement]) -> list[Replacement]:
    """Two rules for the same spoken phrase would make the outcome depend on their order."""
    seen: set[str] = set()
    for rule in rules:
        key = phrase_key(rule)
        if key in seen:
            raise ValueError(f"two replacements for the spoken phrase {rule.spoken!r}")
        seen.add(key)
    return rules


class UserSettings(BaseModel):
    """Everything a user sets for their own dictation; the defaults are a new user's."""

    model_config = STRICT

    vocabulary: Vocabulary = Field(default_factory=list)
    """Words and phrases the recogniser should expect (names, jargon), each at most
    `MAX_TERM_CHARS`; sent with every recording of this user as the recogniser's hints."""
    replacements: Replacements = Field(default_factory=list)
    """Spoken → written, applied to the recognised text before any agent sees it."""
    default_agent: AgentName | None = None
    """The agent or pipeline the page preselects, the CLI uses when `cli.agent` is unset and
    the Wyoming server uses when a satellite names none. A client preference only: the
    gateway never sends a recording to an agent the request did not ask for."""
    language: Language | None = None
    """Fixed recognition language (ISO 639, e.g. `en`); None lets the engine detect it. A
    request that names its own language wins."""
    keep_audio: bool = True
    """False: the audio is deleted as soon as it is transcribed (the transcript stays)."""
    audio_retention_days: RetentionDays | None = None
    """Audio older than this is deleted by the gateway's retention sweep; None keeps it."""
    transcript_retention_days: RetentionDays | None = None
    """Transcripts (and their audio) older than this are deleted; None keeps them."""

    @field_validator("vocabulary")
    @classmethod
    def _terms(cls, value: list[str]) -> list[str]:
        return unique_terms(value)

    @field_validator("replacements")
    @classmethod
    def _rules(cls, value: list[Replacement]) -> list[Replacement]:
        return _one_rule_per_phrase(value)

    def patched(self, patch: UserSettingsPatch) -> UserSettings:
        """These settings with the fields the patch names replaced (lists as a whole)."""
        return UserSettings.model_validate(
            {**self.model_dump(), **patch.model_dump(exclude_unset=True)}
        )


class UserSettingsPatch(BaseModel):
    """`PATCH /api/me/settings`: the fields present replace the stored ones (a list is
    replaced whole, `null` resets a field to unset); absent fields stay as they are."""

    model_config = STRICT

    vocabulary: Vocabulary | None = None
    replacements: Replacements | None = None
    default_agent: AgentName | None = None
    language: Language | None = None
    keep_audio: bool | None = None
    audio_retention_days: RetentionDays | None = None
    transcript_retention_days: RetentionDays | None = None

    @field_validator("vocabulary", "replacements", "keep_audio")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("may not be null (send [] or true/false instead)")
        return value

    @field_validator("vocabulary")
    @classmethod
    def _terms(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else unique_terms(value)

    @field_validator("replacements")
    @classmethod
    def _rules(cls, value: list[Replacement] | None) -> list[Replacement] | None:
        return None if value is None else _one_rule_per_phrase(value)


class PreviewRequest(BaseModel):
    """The settings page's test field: text as the recogniser might write it."""

    model_config = STRICT

    text: str = Field(max_length=MAX_PREVIEW_CHARS)
    replacements: Replacements | None = None
    """A draft to try before saving it; None uses the caller's stored replacements."""

    @field_validator("replacements")
    @classmethod
    def _rules(cls, value: list[Replacement] | None) -> list[Replacement] | None:
        return None if value is None else _one_rule_per_phrase(value)


class PreviewResult(BaseModel):
    text: str
    """`text` with the replacements applied, exactly as the worker would write it."""

    @classmethod
    def of(cls, text: str, replacements: list[Replacement]) -> PreviewResult:
        return cls(text=apply_replacements(text, replacements))


LIMITS = {
    "VOCABULARY": MAX_VOCABULARY,
    "TERM_CHARS": MAX_TERM_CHARS,
    "REPLACEMENTS": MAX_REPLACEMENTS,
    "SPOKEN_CHARS": MAX_SPOKEN_CHARS,
    "WRITTEN_CHARS": MAX_WRITTEN_CHARS,
    "RETENTION_DAYS": MAX_RETENTION_DAYS,
    "PREVIEW_CHARS": MAX_PREVIEW_CHARS,
}
"""The bounds the settings page shows (counts, disabled buttons) before the server says."""


def render_limits_js() -> str:
    """The page's copy of `LIMITS`: an ES module with one frozen object."""
    lines = [
        "// Generated by `python -m whisp_shared.user_settings` from whisp_shared: do not edit.",
        "// The bounds of a user's settings; the server enforces them (422), the page shows them.",
        "export const Limit = Object.freeze({",
        *(f"  {name}: {value}," for name, value in LIMITS.items()),
        "});",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.stdout.write(render_limits_js())
