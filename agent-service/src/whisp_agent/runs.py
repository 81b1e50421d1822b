"""The shapes of a run: what it is asked (`RunRequest`), what it streams (`RunEvent`) and
what it ends with (`RunOutcome`).

Plain models with no behaviour, so the routes, the bus consumer and the metrics can all
name them without importing the runtime that produces them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from whisp_shared.events import TokenUsage

RunKind = Literal["agent", "pipeline"]


class RunRequest(BaseModel):
    target: str
    """An agent id or a pipeline id."""
    text: str
    user_id: str
    session_id: str | None = None
    run_key: str | None = None
    """Idempotency key for side effects (the recording id on the bus)."""


class AgentUsage(BaseModel):
    """What one agent of a run spent (a handoff run spends tokens on several)."""

    agent_id: str
    provider: str
    model: str
    usage: TokenUsage
    cost_usd: float | None = None


class StageResult(BaseModel):
    index: int
    name: str
    agent_id: str
    """The agent that answered (after any handoffs)."""
    started_with: str
    output: str
    handoffs: list[str] = Field(default_factory=list)
    usage: TokenUsage = Field(default_factory=TokenUsage)


class RunOutcome(BaseModel):
    run_id: str
    target: str
    kind: RunKind
    agent_id: str
    """Who gave the final answer."""
    output: str
    stages: list[StageResult]
    usage: TokenUsage
    by_agent: list[AgentUsage]
    cost_usd: float | None
    session_id: str | None
    seconds: float


class RunEvent(BaseModel):
    """One step of a streamed run."""

    type: Literal["delta", "agent", "tool", "stage", "done"]
    agent_id: str | None = None
    text: str | None = None
    stage: int | None = None
    outcome: RunOutcome | None = None
