"""The offline default, end to end: the real llama.cpp server on the bundled Gemma 3 270M,
reached through the same code path as OpenAI (OpenAIModels → chat completions over HTTP)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agents.conftest import make_rig
from tests.agents.local_llm_proc import LocalLLM
from whisp_agent.runs import RunRequest
from whisp_agent.settings import AgentSettings, LocalLLMSettings

pytestmark = pytest.mark.e2e

AGENT = """
id: assistant
instructions: You are a helpful assistant. Answer the question.
verbosity: concise
"""


@pytest.fixture(scope="module")
def local_llm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalLLM]:
    log = tmp_path_factory.mktemp("llm") / "local-llm.log"
    with LocalLLM(log) as server:
        yield server


def settings(tmp_path: Path, server: LocalLLM) -> AgentSettings:
    folder = tmp_path / "agents"
    folder.mkdir()
    (folder / "assistant.yaml").write_text(AGENT)
    return AgentSettings(
        registry=[folder],
        default_provider="local",
        local_llm=LocalLLMSettings(port=server.port, max_tokens_cap=24),  # bounded runtime
        data_dir=tmp_path / "data",
    )


async def test_gemma_answers_through_the_agent_code_path(
    tmp_path: Path, local_llm: LocalLLM
) -> None:
    rig = make_rig(settings(tmp_path, local_llm))
    started = time.perf_counter()
    outcome = await rig.runtime.run(
        RunRequest(target="assistant", text="What is the capital of France?", user_id="u")
    )
    took = time.perf_counter() - started
    assert outcome.output.strip()
    assert outcome.by_agent[0].provider == "local"
    assert outcome.by_agent[0].model == "gemma-3-270m"
    assert 0 < outcome.usage.output_tokens <= 24 and outcome.usage.input_tokens > 0
    print(
        f"\nlocal llm: ready in {local_llm.ready_s:.2f}s; run {took:.2f}s, "
        f"{outcome.usage.output_tokens} tokens → {outcome.usage.output_tokens / took:.1f} tok/s "
        f"(prompt {outcome.usage.input_tokens} tokens); answer: {outcome.output[:80]!r}"
    )


async def test_gemma_streams_through_the_agent_code_path(
    tmp_path: Path, local_llm: LocalLLM
) -> None:
    rig = make_rig(settings(tmp_path, local_llm))
    started = time.perf_counter()
    first: float | None = None
    deltas = []
    async for event in rig.runtime.stream(
        RunRequest(target="assistant", text="Name three colours.", user_id="u")
    ):
        if event.type == "delta" and event.text:
            first = first or time.perf_counter() - started
            deltas.append(event.text)
        if event.outcome is not None:
            assert event.outcome.output.strip() == "".join(deltas).strip()
    total = time.perf_counter() - started
    assert deltas and first is not None
    assert event.outcome is not None and event.outcome.usage.output_tokens >= len(deltas) - 1
    print(
        f"\nlocal llm stream: first token {first * 1000:.0f} ms, {len(deltas)} deltas in "
        f"{total:.2f}s → {len(deltas) / (total - first + 1e-9):.1f} deltas/s after the first"
    )
