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

Time to first word: the service streams its bus runs (`answer_stream`), so each run's first
`AnswerDelta` on whisp:live is timed against the `TranscriptReady` that asked for it (both
`created_at`s: set just before their XADDs, on this machine's clock), beside the direct
call's time to first token; the pieces per run are counted against the model's chunks.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

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
from whisp_shared.codec import decode_fields
from whisp_shared.config import BusSettings
from whisp_shared.events import AgentResponded, TranscriptReady
from whisp_shared.streams import LIVE, RESPONSES, TRANSCRIPTS
from whisp_shared.views import CLIENT_EVENT_ADAPTER, AnswerDelta

pytestmark = pytest.mark.bench

RUNS = 8
MAX_TOKENS = 16
INSTRUCTIONS = "You are a helpful assistant."
PROMPT = "Summarize: the meeting moved to Friday and Bob books the room."
RESULTS = Path(__file__).parent / "results" / "agents.json"


async def answer_deltas(redis: Redis) -> dict[str, list[AnswerDelta]]:
    """Every answer delta on whisp:live, by recording id, in order."""
    found: dict[str, list[AnswerDelta]] = {}
    for _id, fields in await redis.xrange(LIVE):
        event = decode_fields(fields, CLIENT_EVENT_ADAPTER)
        if isinstance(event, AnswerDelta):
            found.setdefault(event.recording_id, []).append(event)
    return found


async def direct_stream(
    http: httpx.AsyncClient, url: str, body: dict[str, object]
) -> tuple[float, list[str], dict[str, int]]:
    """Stream one completion: (seconds to the first text, its text chunks, the usage chunk)."""
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
    return first, parts, usage


def plot(result: dict[str, Any], path: Path) -> None:
    """Per-run seconds of both paths (left) and the time to the first word (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for key, label in (("direct_s", "direct llama.cpp server"), ("service_s", "agent service")):
        left.plot(range(1, len(result[key]) + 1), result[key], marker="o", label=label)
    left.set_xlabel("run")
    left.set_ylabel("seconds per answer")
    left.set_ylim(bottom=0)
    left.set_title(f"same prompt, {result['max_tokens']} tokens: service/direct "
                   f"{result['ratio_service_over_direct']}x (medians)")  # fmt: skip
    left.legend(fontsize=8)
    firsts = {"direct: first token": result["direct_ttft_median_ms"]}
    if result.get("service_first_delta_median_ms") is not None:
        firsts["service: first delta on the bus"] = result["service_first_delta_median_ms"]
    right.bar(list(firsts), list(firsts.values()), color=["tab:blue", "tab:orange"][: len(firsts)])
    right.set_ylabel("ms (median)")
    right.set_title(f"time to first word; decode {result['direct_decode_tok_s_median']} tok/s")
    fig.suptitle(f"Agent service vs direct model call ({result['model']}, {os.cpu_count()} cores)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


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
        chunks: list[int] = []
        asked: dict[str, TranscriptReady] = {}
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
                first, parts, usage = await direct_stream(
                    http, f"{llm.base_url}/chat/completions", body
                )
                direct_s.append(time.perf_counter() - started)
                chunks.append(len(parts))
                ttft_s.append(first)
                if direct_s[-1] - first > 0:
                    tok_s.append(usage.get("completion_tokens", 0) / (direct_s[-1] - first))
                direct_text = "".join(parts)

                started = time.perf_counter()
                ask = TranscriptReady(
                    recording_id=f"bench-{i}", user_id="bench", text=PROMPT, engine="bench",
                    model="none", audio_duration_s=1, processing_s=0, real_time_factor=0,
                    agent_id="bench",
                )  # fmt: skip
                asked[ask.recording_id] = ask
                await bus.publish(TRANSCRIPTS, ask)

                async def answered(n: int = i + 1) -> bool:
                    return len(await stream_events(redis, RESPONSES)) >= n

                await wait_for(answered, timeout=60, interval=0.002)
                service_s.append(time.perf_counter() - started)
        events = await stream_events(redis, RESPONSES)
        assert len(events) == RUNS and all(isinstance(e, AgentResponded) for e in events)
        same = sum(e.output.strip() == direct_text.strip() for e in events)  # type: ignore[union-attr]
        deltas = await answer_deltas(redis)
    assert set(deltas) == set(asked), "every bus run streams its answer"
    for event in events:
        streamed = "".join(d.delta for d in deltas[event.recording_id])
        assert streamed.strip() == event.output.strip()  # type: ignore[attr-defined]
    first_delta_ms = [
        (deltas[rid][0].created_at - ask.created_at).total_seconds() * 1000
        for rid, ask in asked.items()
    ]
    pieces = [len(deltas[rid]) for rid in asked]
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
        "service_first_delta_median_ms": round(statistics.median(first_delta_ms), 1),
        "service_first_delta_ms": [round(x, 1) for x in first_delta_ms],
        "answer_pieces_median": statistics.median(pieces),
        "model_chunks_median": statistics.median(chunks),
        "server_ready_s": round(llm.ready_s, 2),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    plot(result, RESULTS.with_suffix(".png"))
    print(json.dumps(result, indent=2))
