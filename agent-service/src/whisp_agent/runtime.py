"""Run an agent or a pipeline: the one code path behind REST, SSE and the bus consumer.

A run yields `RunEvent`s (text deltas, agent switches, tool calls, stage boundaries) and ends
with a `RunOutcome`; `run()` just drains the same stream, so streaming and non-streaming
behave identically. What a run spent is counted per agent (`usage`), then priced, stored and
exported here once the run has finished, together with the session's attributed log; a run
that fails books what it spent before failing all the same.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from agents import RunConfig, Runner
from agents.memory import Session
from agents.result import RunResultBase

from whisp_agent import framing, metrics
from whisp_agent.build import AgentFactory
from whisp_agent.errors import AgentConfigError, BadInput, InputTooLong, UnknownAgent, translate
from whisp_agent.registry import Registry
from whisp_agent.runs import AgentUsage, RunEvent, RunKind, RunOutcome, RunRequest, StageResult
from whisp_agent.sdk_events import run_events
from whisp_agent.sessions import SessionStore, close_session, turns_from
from whisp_agent.settings import AgentSettings
from whisp_agent.spec import StageSpec
from whisp_agent.store import Store
from whisp_agent.tools import ToolDeps
from whisp_agent.usage import (
    UsageHooks,
    add_usage,
    cost_usd,
    total_cost,
    total_usage,
    usage_rows,
)
from whisp_shared.events import TokenUsage
from whisp_shared.logs import get_logger

log = get_logger(__name__)


@dataclass
class _Run:
    """What one run has gathered so far (usage per agent, finished stages)."""

    request: RunRequest
    kind: RunKind
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    started: float = field(default_factory=time.perf_counter)
    by_agent: dict[str, TokenUsage] = field(default_factory=dict)
    stages: list[StageResult] = field(default_factory=list)
    booked: bool = False
    """Whether what it spent is in the usage table and the metrics (`_book`)."""


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
        metrics.SESSIONS.watch(store)

    def kind_of(self, target: str) -> RunKind:
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

    def _admit(self, request: RunRequest) -> RunKind:
        """Refuse, before any model call, what cannot run: unknown or unavailable targets,
        empty or oversized input."""
        kind = self.kind_of(request.target)
        problem = self.unavailable(request.target)
        if problem is not None:
            raise AgentConfigError(f"'{request.target}' cannot run: {problem}")
        if not request.text.strip():
            raise BadInput("the input text is empty")
        if len(request.text) > self.settings.max_input_chars:
            raise InputTooLong(
                f"the input is {len(request.text)} characters; at most "
                f"{self.settings.max_input_chars} are accepted"
            )
        return kind

    async def _events(self, request: RunRequest, streamed: bool) -> AsyncIterator[RunEvent]:
        state = _Run(request, self._admit(request))
        session: Session | None = None
        try:
            if state.kind == "agent":
                stages = [StageSpec(agent=request.target)]
            else:
                stages = list(self.registry.pipelines[request.target].stages)
            # One agent keeps model memory in the session; a pipeline's stages each see only
            # their input, and the session then records the exchange (input → final answer).
            session = self._session(request, state.kind)
            previous = request.text
            for index, stage in enumerate(stages):
                if state.kind == "pipeline":
                    yield RunEvent(type="stage", stage=index, agent_id=stage.agent)
                # The registry's template is trusted text; what was dictated is framed data.
                spec = self.registry.agents[stage.agent]
                text = self.factory.user_message(spec, stage.prompt, previous, request.text)
                async for event in self._stage(state, index, stage, text, session, streamed):
                    yield event
                previous = state.stages[-1].output
            outcome = await self._finish(state)
        except Exception as exc:
            await close_session(session)
            error = translate(exc)
            metrics.RUNS.labels(request.target, error.code).inc()
            await self._book_failed(state)
            log.warning("agent_run_failed", target=request.target, code=error.code,
                        error=error.message)  # fmt: skip
            raise error from exc
        await close_session(session)
        yield RunEvent(type="done", agent_id=outcome.agent_id, outcome=outcome)

    def _remembers(self, request: RunRequest, kind: RunKind) -> bool:
        if request.session_id is None:
            return False
        return kind == "pipeline" or self.registry.agents[request.target].memory

    def _session(self, request: RunRequest, kind: RunKind) -> Session | None:
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
        hooks = UsageHooks()
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
        try:
            if streamed:
                streaming = Runner.run_streamed(agent, text, **run_args)
                tag = index if state.kind == "pipeline" else None
                async for event in run_events(streaming, stage.agent, tag):
                    if event.type == "delta" and event.agent_id:
                        hooks.count_delta(event.agent_id)
                    yield event
                hooks.fill_missing_output_tokens()
                result: RunResultBase = streaming
            else:
                result = await Runner.run(agent, text, **run_args)
        finally:
            for agent_id, usage in hooks.by_agent.items():
                state.by_agent[agent_id] = add_usage(state.by_agent.get(agent_id, TokenUsage()),
                                                     usage)  # fmt: skip
        answered = self.registry.agents[result.last_agent.name]
        state.stages.append(
            StageResult(
                index=index,
                name=stage.name or stage.agent,
                agent_id=answered.id,
                started_with=stage.agent,
                output=framing.tidy_output(
                    str(result.final_output or ""), text_only=answered.text_only
                ),
                handoffs=hooks.handoffs,
                usage=total_usage(hooks.by_agent.values()),
            )
        )

    async def _finish(self, state: _Run) -> RunOutcome:
        request = state.request
        by_agent = await self._book(state)
        last = state.stages[-1]
        outcome = RunOutcome(
            run_id=state.run_id,
            target=request.target,
            kind=state.kind,
            agent_id=last.agent_id,
            output=last.output,
            stages=state.stages,
            usage=total_usage(a.usage for a in by_agent),
            by_agent=by_agent,
            cost_usd=total_cost(a.cost_usd for a in by_agent),
            session_id=request.session_id,
            seconds=round(time.perf_counter() - state.started, 4),
        )
        await self._record(outcome, request)
        return outcome

    def _priced(self, agent_id: str, usage: TokenUsage) -> AgentUsage:
        where = self.factory.resolve(self.registry.agents[agent_id])
        return AgentUsage(
            agent_id=agent_id, provider=where.provider, model=where.model, usage=usage,
            cost_usd=cost_usd(usage, self.settings.prices.get(where.model)),
        )  # fmt: skip

    async def _book(self, state: _Run) -> list[AgentUsage]:
        """What the run spent per agent, priced, written to the usage table and the metrics
        once; a failed run books it too (the tokens before the failure were spent)."""
        spent = [self._priced(agent_id, usage) for agent_id, usage in state.by_agent.items()]
        if spent and not state.booked:
            state.booked = True
            request = state.request
            await self.store.record_usage(usage_rows(request, state.run_id, spent))
            metrics.observe_usage(spent, request.user_id)
        return spent

    async def _book_failed(self, state: _Run) -> None:
        try:
            await self._book(state)
        except Exception as exc:  # the run's own failure is what the caller must hear of
            log.warning("usage_not_recorded", run_id=state.run_id, error=repr(exc))

    async def _record(self, outcome: RunOutcome, request: RunRequest) -> None:
        """The run to Prometheus; the exchange to the session's attributed log."""
        metrics.observe_run(outcome)
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
            await close_session(session)
