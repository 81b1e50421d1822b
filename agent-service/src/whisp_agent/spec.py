"""What an agent or pipeline YAML document may say, as pydantic models.

Types are checked here; meaning (does the tool exist, does the handoff target exist, is there
a cycle) is checked by `registry.py` against everything loaded, so that one pass can report
every problem. Fields whose values are checked against a list (verbosity, provider, tools)
are plain strings here for the same reason: the registry says which value is wrong and
what the choices are, instead of a generic "validation error".
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from whisp_agent.settings import ModelKnobs

ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GuardrailSpec(_Doc):
    """An input check that runs before the model is called (a trip costs no tokens)."""

    type: str
    """`max_chars` or `blocked_terms`."""
    max_chars: int | None = Field(default=None, ge=1)
    terms: list[str] = Field(default_factory=list)
    message: str | None = None
    """What the caller is told when it trips."""


class AgentSpec(_Doc):
    id: str = Field(pattern=ID_PATTERN)
    name: str | None = None
    description: str = ""
    """Shown in `GET /agents` and to agents that may hand off to this one."""
    instructions: str | None = None
    """Required (the registry reports it missing); the system prompt."""
    provider: str | None = None
    """None: `agents.default_provider`."""
    model: str | None = None
    """None: the provider's default model."""
    verbosity: str = "normal"
    model_settings: ModelKnobs = Field(default_factory=ModelKnobs)
    """Per-field overrides of the verbosity table (a poet may want temperature 1.1 even when
    concise)."""
    tools: list[str] = Field(default_factory=list)
    delegate_to: list[str] = Field(default_factory=list)
    """Agents this one may hand the conversation to."""
    guardrails: list[GuardrailSpec] = Field(default_factory=list)
    memory: bool = True
    """False: session ids are ignored; every run starts fresh."""
    max_turns: int | None = Field(default=None, ge=1)
    dictation: Literal["data", "request"] = "data"
    """How the agent treats the dictated text (always delimited, see `framing`): `data` is
    the material its task works on, and requests in it are not obeyed (a summarizer, the
    clean-up agent); `request` is the user asking it something (an assistant), which still
    cannot change its instructions."""
    task: str | None = None
    """The task in one line, repeated after the dictated text (default: the instructions;
    for `dictation: request`, "help with the request above")."""
    filters: list[Literal["disfluencies"]] = Field(default_factory=list)
    """Rules applied to the input before the model sees it: `disfluencies` removes
    hesitations, set-off fillers and evident self-corrections (`whisp_agent.disfluency`)."""
    text_only: bool = False
    """The answer is the (transformed) text itself: a preamble such as "Here is the cleaned
    text:" or quotes around the whole answer are removed from the final output."""

    @property
    def display_name(self) -> str:
        return self.name or self.id


class StageSpec(_Doc):
    agent: str
    name: str | None = None
    """How the stage is shown (default: the agent id)."""
    prompt: str | None = None
    """Template for the stage's input: `{input}` is the previous stage's output, `{original}`
    the pipeline's input. None passes the previous output through unchanged."""


class PipelineSpec(_Doc):
    id: str = Field(pattern=ID_PATTERN)
    name: str | None = None
    description: str = ""
    stages: list[StageSpec] = Field(min_length=1)

    @field_validator("stages", mode="before")
    @classmethod
    def _bare_names(cls, value: Any) -> Any:
        """`stages: [summarizer, action_items]` is short for `[{agent: summarizer}, ...]`."""
        if isinstance(value, list):
            return [{"agent": v} if isinstance(v, str) else v for v in value]
        return value
