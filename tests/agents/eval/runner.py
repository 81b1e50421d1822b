"""Run the eval set through the real agent code path (the runtime, streamed, as the CLI and
the web page run agents) and score every answer.

Timing per case: time to the first text delta (what a person waits for before words
appear) and to the end of the run. Pipelines count from the run's start to the first delta
of any stage.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.agents.conftest import Rig, make_rig
from tests.agents.eval.scoring import Case, Scored, load_cases, score
from whisp_agent.runs import RunOutcome, RunRequest
from whisp_agent.settings import AgentSettings, LocalLLMSettings


@dataclass
class CaseRun:
    scored: Scored | None
    """None: the case was skipped (see `skipped`)."""
    skipped: str | None = None
    ttft_s: float | None = None
    total_s: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    stages: list[str] = field(default_factory=list)


def eval_settings(tmp_path: Path, port: int, **local: object) -> AgentSettings:
    """The shipped registry on the local model at `port` (no keys: tool agents skip)."""
    return AgentSettings(
        default_provider="local",
        local_llm=LocalLLMSettings(port=port, **local),
        data_dir=tmp_path / "data",
    )


def _caps(rig: Rig, outcome: RunOutcome) -> bool:
    """Did every stage stop before its agent's max_tokens?"""
    factory = rig.runtime.factory
    for stage in outcome.stages:
        cap = factory.model_settings(rig.runtime.registry.agents[stage.agent_id]).max_tokens
        if cap is not None and stage.usage.output_tokens >= cap:
            return False
    return True


async def run_case(rig: Rig, case: Case) -> CaseRun:
    problem = rig.runtime.unavailable(case.target)
    if problem is not None:
        return CaseRun(scored=None, skipped=problem)
    started = time.perf_counter()
    first: float | None = None
    outcome: RunOutcome | None = None
    async for event in rig.runtime.stream(
        RunRequest(target=case.target, text=case.input, user_id="eval")
    ):
        if event.type == "delta" and event.text and first is None:
            first = time.perf_counter() - started
        if event.outcome is not None:
            outcome = event.outcome
    total = time.perf_counter() - started
    assert outcome is not None
    return CaseRun(
        scored=score(case, outcome.output, _caps(rig, outcome)),
        ttft_s=first,
        total_s=total,
        input_tokens=outcome.usage.input_tokens,
        output_tokens=outcome.usage.output_tokens,
        stages=[s.output for s in outcome.stages],
    )


async def run_eval(settings: AgentSettings, cases: list[Case] | None = None) -> list[CaseRun]:
    rig = make_rig(settings)
    try:
        return [await run_case(rig, case) for case in cases or load_cases()]
    finally:
        close = getattr(rig.runtime.factory.models, "close", None)
        if close is not None:
            await close()
        await rig.store.close()
        await rig.sessions.close()
