"""Benchmark: the agent service's overhead per run, against calling the model directly.

Same model server (the real llama.cpp server on the default bundled model), same settings
(temperature 0, fixed max_tokens), interleaved in one run:
- direct: POST /v1/chat/completions with httpx, streamed (time to first token, tokens/s);
- service: a TranscriptReady(agent_id) published on the bus → the agent service (in this
  process, real Redis) → AgentResponded read back from whisp:responses.
The direct call sends exactly the messages the service sends (the framing rule as system
prompt, the framed transcript with the task after it: `framing`), so both generate the same
tokens and the ratio is the service's own cost.
The ratio service/direct (median) goes to tests/bench/results/agents.json. Nothing asserts
speed; only that every run answered once.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from tests.agents.local_llm_proc import LocalLLM
from tests.integration.bus_helpers import stream_events, wait_for
from whisp_agent.app import create_app
from whisp_agent.framing import system_prompt, user_message
from whisp_agent.settings import (
    DEFAULT_LOCAL_MODEL,
    AgentSettings,
    LocalLLMSettings,
    ModelKnobs,
    VerbosityStyle,
)
from whisp_agent.spec import AgentSpec
from whisp_shared.bus import EventBus
from whisp_shared.config import BusSettings
from whisp_shared.events import AgentResponded, TranscriptReady
from whisp_shared.streams import RESPONSES, TRANSCRIPTS

pytestmark = pytest.mark.bench

RUNS = 8
MAX_TOKENS = 16
INSTRUCTIONS = "You are a helpful assistant."
PROMPT = "Summarize: the meeting moved to Friday and Bob books the room."
RESULTS = Path(__file__).parent / "results" / "agents.json"


async def direct_stream(
    http: httpx.AsyncClient, url: str, body: dict[str, object]
) -> tuple[float, str, dict[str, int]]:
    """Stream one completion: (seconds to the first text, the text, the usage chunk)."""
    started = time.perf_counter()
    first = 0.0
    parts: list[str] = []
    usage: dict[str, int] = {}
    async with http.stream("POST", url, json={**body, "stream": True}) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            usage = chunk.get("usage") or usage
            for choice in chunk.get("choices") or ():
                content = (choice.get("delta") or {}).get("content")
                if content:
                    first = first or time.perf_counter() - started
                    parts.append(content)
    return first, "".join(parts), usage


async def test_service_overhead_against_direct_model_calls(
    tmp_path: Path, bus_settings: BusSettings, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WHISP_CONFIG", str(tmp_path / "absent.yaml"))
    (tmp_path / "agents").mkdir()
    (tmp_path / "agents" / "bench.yaml").write_text(
        f"id: bench\ninstructions: {INSTRUCTIONS}\nverbosity: normal\n"
    )
    with LocalLLM() as llm:
        settings = AgentSettings(
            registry=[tmp_path / "agents"],
            default_provider="local",
            local_llm=LocalLLMSettings(port=llm.port, max_tokens_cap=MAX_TOKENS),
            verbosity={"normal": VerbosityStyle(settings=ModelKnobs(temperature=0.0))},
            data_dir=tmp_path / "data",
        )
        bus = EventBus(bus_settings.model_copy(update={"claim_idle_ms": 60_000}))
        app = create_app(settings, bus)
        direct_s: list[float] = []
        ttft_s: list[float] = []
        tok_s: list[float] = []
        service_s: list[float] = []
        spec = AgentSpec(id="bench", instructions=INSTRUCTIONS)
        async with app.router.lifespan_context(app), httpx.AsyncClient(timeout=60) as http:
            messages = [
                {"role": "system", "content": system_prompt(spec)},
                {"role": "user", "content": user_message(spec, None, PROMPT, PROMPT)},
            ]
            body = {"model": DEFAULT_LOCAL_MODEL, "temperature": 0.0, "max_tokens": MAX_TOKENS,
                    "messages": messages}  # fmt: skip
            await http.post(f"{llm.base_url}/chat/completions", json=body)  # warm-up
            for i in range(RUNS):
                started = time.perf_counter()
                first, text, usage = await direct_stream(http, f"{llm.base_url}/chat/completions",
                                                         body)  # fmt: skip
                direct_s.append(time.perf_counter() - started)
                ttft_s.append(first)
                if direct_s[-1] - first > 0:
                    tok_s.append(usage.get("completion_tokens", 0) / (direct_s[-1] - first))
                direct_text = text

                started = time.perf_counter()
                await bus.publish(TRANSCRIPTS, TranscriptReady(
                    recording_id=f"bench-{i}", user_id="bench", text=PROMPT, engine="bench",
                    model="none", audio_duration_s=1, processing_s=0, real_time_factor=0,
                    agent_id="bench",
                ))  # fmt: skip

                async def answered(n: int = i + 1) -> bool:
                    return len(await stream_events(redis, RESPONSES)) >= n

                await wait_for(answered, timeout=60, interval=0.002)
                service_s.append(time.perf_counter() - started)
        events = await stream_events(redis, RESPONSES)
        assert len(events) == RUNS and all(isinstance(e, AgentResponded) for e in events)
        same = sum(e.output.strip() == direct_text.strip() for e in events)  # type: ignore[union-attr]
    direct, service = statistics.median(direct_s), statistics.median(service_s)
    result = {
        "runs": RUNS,
        "max_tokens": MAX_TOKENS,
        "model": f"{DEFAULT_LOCAL_MODEL} (Q4_K_M, llama-cpp-python server)",
        "direct_ttft_median_ms": round(statistics.median(ttft_s) * 1000, 1),
        "direct_decode_tok_s_median": round(statistics.median(tok_s), 1) if tok_s else None,
        "direct_prompt_tokens": usage.get("prompt_tokens"),
        "direct_median_s": round(direct, 4),
        "service_median_s": round(service, 4),
        "overhead_median_ms": round((service - direct) * 1000, 1),
        "ratio_service_over_direct": round(service / direct, 3),
        "direct_s": [round(x, 4) for x in direct_s],
        "service_s": [round(x, 4) for x in service_s],
        "same_answer_as_direct": same,
        "server_ready_s": round(llm.ready_s, 2),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
