"""Benchmark: the agent service's overhead per run, against calling the model directly.

Same model server (the real llama.cpp server on Gemma 3 270M), same prompt, same settings
(temperature 0, fixed max_tokens, so both paths generate the same tokens), interleaved in
one run:
- direct: POST /v1/chat/completions with httpx;
- service: a TranscriptReady(agent_id) published on the bus → the agent service (in this
  process, real Redis) → AgentResponded read back from whisp:responses.
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
from whisp_agent.settings import AgentSettings, LocalLLMSettings, ModelKnobs, VerbosityStyle
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
        service_s: list[float] = []
        async with app.router.lifespan_context(app), httpx.AsyncClient(timeout=60) as http:
            body = {"model": "gemma-3-270m", "temperature": 0.0, "max_tokens": MAX_TOKENS,
                    "messages": [{"role": "system", "content": INSTRUCTIONS},
                                 {"role": "user", "content": PROMPT}]}  # fmt: skip
            await http.post(f"{llm.base_url}/chat/completions", json=body)  # warm-up
            for i in range(RUNS):
                started = time.perf_counter()
                response = await http.post(f"{llm.base_url}/chat/completions", json=body)
                direct_s.append(time.perf_counter() - started)
                assert response.status_code == 200
                direct_text = response.json()["choices"][0]["message"]["content"]

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
        "model": "gemma-3-270m (Q4_K_M, llama-cpp-python server)",
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
