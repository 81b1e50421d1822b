"""Usage on the offline default, counted right: the real llama.cpp server on the bundled
model, one short prompt answered whole and streamed. The input tokens must be exactly the
ChatML prompt the server builds from the messages the agent sends (tokenized by the server
itself, independently of the run), and both runs' tokens and requests must land in the
usage table and in the Prometheus series per user and session."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from llama_cpp import llama_chat_format
from prometheus_client import REGISTRY

from tests.agents.conftest import make_rig
from tests.agents.local_llm_proc import LocalLLM
from whisp_agent.runs import RunOutcome, RunRequest
from whisp_agent.settings import AgentSettings, LocalLLMSettings

pytestmark = pytest.mark.e2e

GREETER = """
id: greeter
instructions: Greet the person named in the text in one short sentence.
dictation: request
verbosity: concise
model_settings: {temperature: 0.0, max_tokens: 24}
"""
MAX_TOKENS = 24


@pytest.fixture(scope="module")
def local_llm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalLLM]:
    with LocalLLM(tmp_path_factory.mktemp("llm") / "local-llm.log") as server:
        yield server


def count_tokens(server: LocalLLM, text: str) -> int:
    response = httpx.post(
        f"http://127.0.0.1:{server.port}/extras/tokenize/count", json={"input": text}, timeout=30
    )
    response.raise_for_status()
    return int(response.json()["count"])


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_local_tokens_reach_usage_rows_and_metrics(
    tmp_path: Path, local_llm: LocalLLM
) -> None:
    (tmp_path / "agents").mkdir()
    (tmp_path / "agents" / "greeter.yaml").write_text(GREETER)
    rig = make_rig(
        AgentSettings(
            registry=[tmp_path / "agents"],
            local_llm=LocalLLMSettings(port=local_llm.port),
            data_dir=tmp_path / "data",
        )
    )
    user = f"local-{uuid.uuid4().hex[:8]}"
    # A session each, so that neither run sees the other's turn in its prompt.
    request = RunRequest(target="greeter", text="This is Ann.", user_id=user, session_id="s1")
    whole = await rig.runtime.run(request)
    streamed: RunOutcome | None = None
    async for event in rig.runtime.stream(request.model_copy(update={"session_id": "s2"})):
        streamed = event.outcome or streamed
    assert streamed is not None

    # What the server tokenizes: the ChatML prompt of the system and user messages.
    factory = rig.runtime.factory
    spec = rig.runtime.registry.agents["greeter"]
    messages = [
        {"role": "system", "content": factory.instructions(spec)},
        {"role": "user", "content": factory.user_message(spec, None, request.text, request.text)},
    ]
    prompt = llama_chat_format.format_chatml(messages=messages).prompt
    prompt_tokens = count_tokens(local_llm, prompt)
    for outcome in (whole, streamed):
        assert outcome.by_agent[0].provider == "local"
        assert outcome.usage.requests == 1
        assert outcome.usage.input_tokens == prompt_tokens
        answer_tokens = count_tokens(local_llm, outcome.output)
        assert 0 < outcome.usage.output_tokens <= MAX_TOKENS
        assert abs(outcome.usage.output_tokens - answer_tokens) <= 2, outcome.output
    assert "ann" in whole.output.lower() and streamed.output == whole.output  # temperature 0
    assert streamed.usage == whole.usage  # the stream's usage chunk, not a chunk estimate

    sessions = await rig.store.usage_totals("session", user_id=user)
    assert [(t.key, t.requests, t.input_tokens, t.output_tokens, t.cost_usd) for t in sessions] == [
        (session, 1, prompt_tokens, outcome.usage.output_tokens, None)  # the model is unpriced
        for session, outcome in (("s1", whole), ("s2", streamed))
    ]
    assert metric("whisp_agent_user_model_requests_total", user=user) == 2
    assert metric("whisp_agent_user_tokens_total", user=user, direction="input") == 2 * (
        prompt_tokens
    )
    assert metric("whisp_agent_user_tokens_total", user=user, direction="output") == (
        whole.usage.output_tokens + streamed.usage.output_tokens
    )
    for session, outcome in (("s1", whole), ("s2", streamed)):
        for direction, tokens in (("input", prompt_tokens),
                                  ("output", outcome.usage.output_tokens)):  # fmt: skip
            assert metric("whisp_agent_session_tokens", user=user, session=session,
                          direction=direction) == tokens  # fmt: skip
    print(f"\nlocal usage: prompt {prompt_tokens} tokens; answer {whole.usage.output_tokens} "
          f"tokens ({whole.seconds:.2f}s whole, {streamed.seconds:.2f}s streamed): "
          f"{whole.output!r}")  # fmt: skip
