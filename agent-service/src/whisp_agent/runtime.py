"""Run an agent or a pipeline: the one code path behind REST, SSE and the bus consumer.

A run yields `RunEvent`s (text deltas, agent switches, tool calls, stage boundaries) and ends
with a `RunOutcome`; `run()` just drains the same stream, so streaming and non-streaming
behave identically. Usage is counted per agent through SDK hooks (a handoff run spends
tokens on several agents), then stored, exported and priced.
"""

from __future__ import annotations

import inspect
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

from agents import (
    Agent,
    AgentUpdatedStreamEvent,
    ModelResponse,
    RawResponsesStreamEvent,
    RunConfig,
    RunContextWrapper,
    RunHooks,
    RunItemStreamEvent,
    Runner,
)
from agents.memory import Session
from agents.result import RunResultBase
from pydantic import BaseModel, Field

from whisp_agent import metrics
from whisp_agent.build import AgentFactory
from whisp_agent.errors import AgentConfigError, AgentError, BadInput, UnknownAgent, translate
from whisp_agent.registry import Registry
from whisp_agent.sessions import SessionStore, turns_from
from whisp_agent.settings import AgentSettings
from whisp_agent.spec import AgentSpec, StageSpec
from whisp_agent.store import Store, UsageRow
from whisp_agent.tools import ToolDeps
from whisp_shared.events import TokenUsage
from whisp_shared.logs import get_logger

log = get_logger(__name__)


class RunRequest(BaseModel):
    target: str
    """An agent id or a pipeline id."""
    text: str
    user_id: str
    session_id: str | None = None
    run_key: str | None = None
    """Idempotency key for side effects (the recording id on the bus)."""


class AgentUsage(BaseModel):
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
    kind: Literal["agent", "pipeline"]
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


def add_usage(a: TokenUsage, b: TokenUsage) -> TokenUsage:
    return TokenUsage(
        requests=a.requests + b.requests,
        input_tokens=a.input_tokens + b.input_tokens,
        output_tokens=a.output_tokens + b.output_tokens,
        total_tokens=a.total_tokens + b.total_tokens,
    )


class _UsageHooks(RunHooks[ToolDeps]):
    """Tokens per agent, from each model response as it arrives."""

    def __init__(self) -> None:
        self.by_agent: dict[str, TokenUsage] = {}
        self.handoffs: list[str] = []
        self.deltas: dict[str, int] = {}

    def fill_missing_output_tokens(self) -> None:
        """llama.cpp's server sends no usage in streams (it ignores `stream_options`): count
        its text chunks instead (one token each there), so output tokens are not zero."""
        for agent_id, chunks in self.deltas.items():
            got = self.by_agent.get(agent_id, TokenUsage())
            if got.output_tokens == 0 and chunks:
                self.by_agent[agent_id] = got.model_copy(
                    update={"output_tokens": chunks, "total_tokens": got.input_tokens + chunks}
                )

    async def on_llm_end(
        self, context: RunContextWrapper[ToolDeps], agent: Agent[ToolDeps], response: ModelResponse
    ) -> None:
        u = response.usage
        got = TokenUsage(
            requests=max(u.requests, 1),
            input_tokens=u.input_tokens,
            output_tokens=u.output_tokens,
            total_tokens=u.total_tokens or u.input_tokens + u.output_tokens,
        )
        self.by_agent[agent.name] = add_usage(self.by_agent.get(agent.name, TokenUsage()), got)

    async def on_handoff(
        self,
        context: RunContextWrapper[ToolDeps],
        from_agent: Agent[ToolDeps],
        to_agent: Agent[ToolDeps],
    ) -> None:
        self.handoffs.append(f"{from_agent.name}->{to_agent.name}")


@dataclass
class _Run:
    request: RunRequest
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    started: float = field(default_factory=time.perf_counter)
    by_agent: dict[str, TokenUsage] = field(default_factory=dict)
    stages: list[StageResult] = field(default_factory=list)


class AgentRuntime:
    def __init__(
        self,
        registry: Registry,
        settings: AgentSettings,
        factory: AgentFactory,
        sessions: SessionStore,
        store: Store,
        deps: ToolDeps | None = None,
    ) -> None:
        self.registry = registry
        self.settings = settings
        self.factory = factory
        self.sessions = sessions
        self.store = store
        self._deps = deps or ToolDeps(user_id="")

    def kind_of(self, target: str) -> Literal["agent", "pipeline"]:
        if target in self.registry.agents:
            return "agent"
        if target in self.registry.pipelines:
            return "pipeline"
        known = ", ".join(sorted([*self.registry.agents, *self.registry.pipelines]))
        raise UnknownAgent(f"unknown agent or pipeline '{target}' (known: {known})")

    def unavailable(self, target: str) -> str | None:
        if target in self.registry.pipelines:
            for stage in self.registry.pipelines[target].stages:
                problem = self.factory.unavailable(stage.agent)
                if problem:
                    return problem
            return None
        return self.factory.unavailable(target)

    async def run(self, request: RunRequest) -> RunOutcome:
        """The final answer (non-streaming model calls: complete usage from every server)."""
        async for event in self._events(request, streamed=False):
            if event.outcome is not None:
                return event.outcome
        raise AssertionError("a run always ends with its outcome")

    def stream(self, request: RunRequest) -> AsyncIterator[RunEvent]:
        """Text as the model generates it, ending with a `done` event holding the outcome."""
        return self._events(request, streamed=True)

    async def _events(self, request: RunRequest, streamed: bool) -> AsyncIterator[RunEvent]:
        kind = self.kind_of(request.target)
        problem = self.unavailable(request.target)
        if problem is not None:
            raise AgentConfigError(f"'{request.target}' cannot run: {problem}")
        if not request.text.strip():
            raise BadInput("the input text is empty")
        if len(request.text) > self.settings.max_input_chars:
            raise BadInput(
                f"the input is {len(request.text)} characters; at most "
                f"{self.settings.max_input_chars} are accepted",
                code="input_too_long",
                status=413,
            )
        state = _Run(request)
        session: Session | None = None
        try:
            if kind == "agent":
                stages = [StageSpec(agent=request.target)]
            else:
                stages = list(self.registry.pipelines[request.target].stages)
            # One agent keeps model memory in the session; a pipeline's stages each see only
            # their input, and the session then records the exchange (input → final answer).
            session = self._session(request, kind)
            previous = request.text
            for index, stage in enumerate(stages):
                if kind == "pipeline":
                    yield RunEvent(type="stage", stage=index, agent_id=stage.agent)
                text = (stage.prompt or "{input}").format(input=previous, original=request.text)
                async for event in self._stage(state, index, stage, text, session, streamed):
                    yield event
                previous = state.stages[-1].output
            outcome = await self._finish(state, kind)
        except Exception as exc:
            await _close(session)
            error = translate(exc)
            metrics.RUNS.labels(request.target, error.code).inc()
            log.warning("agent_run_failed", target=request.target, code=error.code,
                        error=error.message)  # fmt: skip
            raise error from exc
        await _close(session)
        yield RunEvent(type="done", agent_id=outcome.agent_id, outcome=outcome)

    def _remembers(self, request: RunRequest, kind: str) -> bool:
        if request.session_id is None:
            return False
        return kind == "pipeline" or self.registry.agents[request.target].memory

    def _session(self, request: RunRequest, kind: str) -> Session | None:
        """The SDK session, opened (lazily created) only for an agent that remembers."""
        if kind != "agent" or request.session_id is None or not self._remembers(request, kind):
            return None
        return self.sessions.open(request.user_id, request.session_id)

    async def _stage(
        self,
        state: _Run,
        index: int,
        stage: StageSpec,
        text: str,
        session: Session | None,
        streamed: bool,
    ) -> AsyncIterator[RunEvent]:
        request = state.request
        spec = self.registry.agents[stage.agent]
        agent = self.factory.agent(stage.agent)
        hooks = _UsageHooks()
        deps = ToolDeps(
            user_id=request.user_id,
            session_id=request.session_id,
            run_key=request.run_key,
            notes=self._deps.notes,
            transcripts=self._deps.transcripts,
        )
        run_args: dict[str, Any] = {
            "context": deps,
            "max_turns": spec.max_turns or self.settings.max_turns,
            "hooks": hooks,
            "session": session,
            "run_config": RunConfig(
                tracing_disabled=True,
                workflow_name=f"whisp:{request.target}",
                trace_include_sensitive_data=False,
            ),
        }
        pipeline = self.kind_of(request.target) == "pipeline"
        try:
            if streamed:
                streaming = Runner.run_streamed(agent, text, **run_args)
                current = stage.agent
                async for event in streaming.stream_events():
                    converted = _convert(event, current)
                    if converted is None:
                        continue
                    if converted.type == "agent" and converted.agent_id:
                        current = converted.agent_id
                    elif converted.type == "delta":
                        hooks.deltas[current] = hooks.deltas.get(current, 0) + 1
                    converted.stage = index if pipeline else None
                    yield converted
                hooks.fill_missing_output_tokens()
                result: RunResultBase = streaming
            else:
                result = await Runner.run(agent, text, **run_args)
        finally:
            for agent_id, usage in hooks.by_agent.items():
                state.by_agent[agent_id] = add_usage(state.by_agent.get(agent_id, TokenUsage()),
                                                     usage)  # fmt: skip
        stage_usage = TokenUsage()
        for usage in hooks.by_agent.values():
            stage_usage = add_usage(stage_usage, usage)
        state.stages.append(
            StageResult(
                index=index,
                name=stage.name or stage.agent,
                agent_id=result.last_agent.name,
                started_with=stage.agent,
                output=str(result.final_output or "").strip(),
                handoffs=hooks.handoffs,
                usage=stage_usage,
            )
        )

    async def _finish(self, state: _Run, kind: Literal["agent", "pipeline"]) -> RunOutcome:
        request = state.request
        by_agent = [self._priced(agent_id, usage) for agent_id, usage in state.by_agent.items()]
        total = TokenUsage()
        for item in by_agent:
            total = add_usage(total, item.usage)
        costs = [a.cost_usd for a in by_agent]
        cost = sum(c for c in costs if c is not None) if any(c is not None for c in costs) else None
        last = state.stages[-1]
        outcome = RunOutcome(
            run_id=state.run_id,
            target=request.target,
            kind=kind,
            agent_id=last.agent_id,
            output=last.output,
            stages=state.stages,
            usage=total,
            by_agent=by_agent,
            cost_usd=cost,
            session_id=request.session_id,
            seconds=round(time.perf_counter() - state.started, 4),
        )
        await self._record(outcome, request)
        return outcome

    def _priced(self, agent_id: str, usage: TokenUsage) -> AgentUsage:
        where = self.factory.resolve(self._spec(agent_id))
        price = self.settings.prices.get(where.model)
        cost = None
        if price is not None:
            cost = (
                usage.input_tokens * price.input_per_mtok
                + usage.output_tokens * price.output_per_mtok
            ) / 1e6
        return AgentUsage(
            agent_id=agent_id, provider=where.provider, model=where.model, usage=usage,
            cost_usd=cost,
        )  # fmt: skip

    def _spec(self, agent_id: str) -> AgentSpec:
        return self.registry.agents[agent_id]

    async def _record(self, outcome: RunOutcome, request: RunRequest) -> None:
        """Usage to SQLite and Prometheus; the exchange to the session's attributed log."""
        rows = [
            UsageRow(
                user_id=request.user_id, session_id=request.session_id, run_id=outcome.run_id,
                target=outcome.target, agent_id=a.agent_id, provider=a.provider, model=a.model,
                requests=a.usage.requests, input_tokens=a.usage.input_tokens,
                output_tokens=a.usage.output_tokens, cost_usd=a.cost_usd,
            )
            for a in outcome.by_agent
        ]  # fmt: skip
        await self.store.record_usage(rows)
        metrics.observe(outcome)
        if request.session_id is None or not self._remembers(request, outcome.kind):
            return
        pipeline = outcome.kind == "pipeline"
        answers = [(s.agent_id, s.output, s.index if pipeline else None) for s in outcome.stages]
        await self.sessions.append(
            request.user_id, request.session_id, turns_from(request.text, outcome.target, answers)
        )
        if pipeline:
            session = self.sessions.open(request.user_id, request.session_id)
            await session.add_items(
                [
                    {"role": "user", "content": request.text},
                    {"role": "assistant", "content": outcome.output},
                ]
            )
            await _close(session)


async def _close(session: Session | None) -> None:
    """SQLite sessions hold connections (sync close); Redis ones share the store's client
    (async close, a no-op for an injected client)."""
    close = getattr(session, "close", None)
    if callable(close):
        result = close()
        if inspect.isawaitable(result):
            await result


def _convert(event: Any, current: str) -> RunEvent | None:
    if isinstance(event, RawResponsesStreamEvent):
        if getattr(event.data, "type", "") == "response.output_text.delta":
            return RunEvent(type="delta", agent_id=current, text=event.data.delta)  # type: ignore[union-attr]
        return None
    if isinstance(event, AgentUpdatedStreamEvent):
        return RunEvent(type="agent", agent_id=event.new_agent.name)
    if isinstance(event, RunItemStreamEvent) and event.name == "tool_called":
        raw = getattr(event.item, "raw_item", None)
        name = getattr(raw, "name", None) or (raw.get("name") if isinstance(raw, dict) else None)
        return RunEvent(type="tool", agent_id=current, text=str(name or "tool"))
    return None


__all__ = ["AgentError", "AgentRuntime", "RunEvent", "RunOutcome", "RunRequest"]
