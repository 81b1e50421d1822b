"""The shipped secretary end to end over real HTTP: the agent service's REST, the OpenAI
Agents SDK, a chat-completions stand-in that asks for tool calls in OpenAI's wire shape, the
Python tools (the note store, a gateway stand-in for transcript search, the calculator, the
clock) and a handoff to the summarizer on another provider. What each tool returned must
reach the model (the next request's `tool` messages); the answer, the session, the usage
rows per agent, user and session, and the Prometheus series must all come out right.

And the other side of tools: offline, the secretary is listed as unavailable, saying why.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from tests.agents.chat_stub import ChatStub, Reply, ToolCall, calls
from tests.agents.conftest import sse_events
from tests.agents.test_tools import GatewayStub
from whisp_agent.app import create_app
from whisp_agent.framing import unframe
from whisp_agent.settings import AgentSettings, GatewaySettings, Price, ProviderSettings
from whisp_shared.bus import EventBus
from whisp_shared.config import BusSettings

SHIPPED = Path(__file__).resolve().parents[2] / "agent-service" / "agents"
PRICE = Price(input_per_mtok=2.0, output_per_mtok=8.0)
ALICE = {"X-Whisp-User": "alice"}


@pytest.fixture
def gateway() -> Iterator[GatewayStub]:
    stub = GatewayStub("svc-token")
    yield stub
    stub.server.shutdown()
    stub.server.server_close()


async def serve(settings: AgentSettings, bus_settings: BusSettings) -> FastAPI:
    return create_app(settings, EventBus(bus_settings))


@pytest.fixture
async def client(
    tmp_path: Path, bus_settings: BusSettings, chat_stub: ChatStub, gateway: GatewayStub
) -> AsyncIterator[httpx.AsyncClient]:
    """The shipped registry: the secretary on `openai` (the stand-in, priced), everything
    else on `edge` (the same stand-in under another model name, unpriced)."""
    settings = AgentSettings(
        registry=[SHIPPED],
        default_provider="edge",
        providers={
            "openai": ProviderSettings(base_url=chat_stub.base_url, model="stub-large"),
            "edge": ProviderSettings(base_url=chat_stub.base_url, model="stub-small"),
        },
        prices={"stub-large": PRICE},
        gateway=GatewaySettings(url=gateway.url),
        gateway_token=SecretStr("svc-token"),
        data_dir=tmp_path / "data",
    )
    app = await serve(settings, bus_settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://agents") as c:
            yield c


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(client: httpx.AsyncClient) -> Samples:
    text = (await client.get("/metrics")).text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def grew(before: Samples, after: Samples, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    return after.get(key, 0.0) - before.get(key, 0.0)


def cost(inp: int, out: int) -> float:
    return (inp * PRICE.input_per_mtok + out * PRICE.output_per_mtok) / 1e6


async def test_the_stand_in_speaks_the_tool_call_wire_shape(chat_stub: ChatStub) -> None:
    """Checked on the raw JSON, not through a client that might forgive a wrong shape."""
    call = ToolCall("calculator", {"expression": "1 + 1"}, id="call_a")
    chat_stub.push(calls(call), calls(call))
    async with httpx.AsyncClient(base_url=chat_stub.base_url) as http:
        whole = (await http.post("/chat/completions", json={"model": "m"})).json()
        choice = whole["choices"][0]
        assert choice["finish_reason"] == "tool_calls"
        assert choice["message"] == {
            "role": "assistant", "content": None,
            "tool_calls": [{"id": "call_a", "type": "function", "function": {
                "name": "calculator", "arguments": '{"expression": "1 + 1"}'}}],
        }  # fmt: skip
        streamed = await http.post("/chat/completions", json={"model": "m", "stream": True})
    chunks = [json.loads(line[6:]) for line in streamed.text.splitlines()
              if line.startswith("data: {")]  # fmt: skip
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    pieces = [t for d in deltas for t in d.get("tool_calls", ())]
    assert deltas[0]["role"] == "assistant"
    assert pieces[0] == {"index": 0, "id": "call_a", "type": "function",
                         "function": {"name": "calculator", "arguments": ""}}  # fmt: skip
    assert len(pieces) > 2 and all(p["index"] == 0 for p in pieces)
    assert "".join(p["function"]["arguments"] for p in pieces) == '{"expression": "1 + 1"}'
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 18
    assert streamed.text.endswith("data: [DONE]\n\n")


async def test_the_secretary_uses_every_tool_and_hands_off_over_http(
    client: httpx.AsyncClient, chat_stub: ChatStub, gateway: GatewayStub
) -> None:
    catalog = {a["id"]: a for a in (await client.get("/agents")).json()["agents"]}
    assert catalog["secretary"]["available"] is True, catalog["secretary"]
    before = await scrape(client)

    # Turn 1, a whole answer: two tools at once, two more, then the answer.
    answer = "Saved the plumber; 17 * 23 = 391; the dentist moved to Friday."
    chat_stub.push(
        calls(ToolCall("write_note", {"text": "The plumber comes Tuesday", "kind": "action_item"}),
              ToolCall("calculator", {"expression": "17 * 23"}),
              prompt_tokens=100, completion_tokens=20),
        calls(ToolCall("current_time", {"timezone": "Europe/Berlin"}),
              ToolCall("search_transcripts", {"query": "dentist"}),
              prompt_tokens=150, completion_tokens=15),
        Reply(text=answer, prompt_tokens=300, completion_tokens=30),
    )  # fmt: skip
    dictated = "Note that the plumber comes Tuesday. What is 17 times 23, the time in Berlin, "
    dictated += "and what did I say about the dentist?"
    body = {"agent": "secretary", "input": dictated, "session_id": "s1"}
    response = await client.post("/chat", json=body, headers=ALICE)
    assert response.status_code == 200, response.text
    outcome = response.json()
    assert outcome["output"] == answer and outcome["agent_id"] == "secretary"
    assert outcome["usage"] == {"requests": 3, "input_tokens": 550, "output_tokens": 65,
                                "total_tokens": 615}  # fmt: skip
    assert outcome["cost_usd"] == pytest.approx(cost(550, 65))

    first, second, third = chat_stub.completions
    offered = {t["function"]["name"] for t in first.body["tools"]}
    assert offered == {"current_time", "calculator", "search_transcripts", "write_note",
                       "transfer_to_summarizer"}  # fmt: skip
    assert first.body["model"] == "stub-large" and "stream" not in first.body
    assert second.tool_results() == {
        "write_note": "saved action item #1: The plumber comes Tuesday",
        "calculator": "17 * 23 = 391",
    }
    results = third.tool_results()
    now = datetime.now().astimezone()
    assert "(Europe/Berlin, ISO " in results["current_time"]
    assert str(now.year) in results["current_time"]
    assert results["search_transcripts"] == (
        "2 of your transcripts match 'dentist':\n"
        "- [2026-11-01T10:00:00Z] Buy milk and call the dentist\n"
        "- [2026-11-01T10:00:00Z] The dentist moved to Friday"
    )
    asked = gateway.requests[-1]
    assert asked["query"] == {"q": "dentist", "limit": "5"}
    assert asked["headers"]["X-Whisp-User"] == "alice"  # from the caller, not the model

    # Turn 2, streamed: a tool whose arguments arrive in pieces, then a handoff.
    summary = "Plumber on Tuesday, dentist on Friday."
    chat_stub.push(
        calls(ToolCall("calculator", {"expression": "391 / 17"}),
              prompt_tokens=40, completion_tokens=5),
        calls(ToolCall("transfer_to_summarizer"), prompt_tokens=60, completion_tokens=6),
        Reply(text=summary, prompt_tokens=70, completion_tokens=9),
    )  # fmt: skip
    body = {"agent": "secretary", "input": "Divide that by 17, then sum it all up.",
            "session_id": "s1"}  # fmt: skip
    streamed = await client.post("/chat/stream", json=body, headers=ALICE)
    assert streamed.status_code == 200, streamed.text
    events = sse_events(streamed.text)
    assert [d["text"] for k, d in events if k == "tool"] == ["calculator"]
    assert ("agent", {"type": "agent", "agent_id": "summarizer"}) in events
    deltas = [d for k, d in events if k == "delta"]
    assert "".join(str(d["text"]) for d in deltas) == summary
    assert {d["agent_id"] for d in deltas} == {"summarizer"}
    kind, done = events[-1]
    assert kind == "done"
    result = done["outcome"]
    assert isinstance(result, dict)
    assert result["output"] == summary and result["agent_id"] == "summarizer"
    assert result["stages"][0]["handoffs"] == ["secretary->summarizer"]
    assert {a["agent_id"]: a["usage"]["requests"] for a in result["by_agent"]} == {
        "secretary": 2, "summarizer": 1,
    }  # fmt: skip

    remembering, dividing, summarizing = chat_stub.completions[3:]
    assert all(s.body["stream"] is True for s in (remembering, dividing, summarizing))
    assert remembering.body["stream_options"] == {"include_usage": True}
    earlier = [unframe(str(m["content"])) for m in remembering.messages if m.get("content")]
    assert dictated in earlier and answer in earlier  # the session's memory
    assert dividing.tool_results()["calculator"] == "391 / 17 = 23"
    assert summarizing.body["model"] == "stub-small"
    assert "Summarize the text" in summarizing.messages[0]["content"]
    assert json.loads(summarizing.tool_results()["transfer_to_summarizer"]) == {
        "assistant": "summarizer"
    }
    assert "tools" not in summarizing.body  # the summarizer has none

    # What was left behind: the session, the note, the usage, the metrics.
    turns = (await client.get("/sessions/s1", headers=ALICE)).json()["turns"]
    assert [(t["role"], t["agent_id"]) for t in turns] == [
        ("user", None), ("assistant", "secretary"), ("user", None), ("assistant", "summarizer"),
    ]  # fmt: skip
    assert turns[1]["text"] == answer and turns[3]["text"] == summary
    notes = (await client.get("/notes", headers=ALICE)).json()
    assert [(n["kind"], n["text"]) for n in notes] == [("action_item", "The plumber comes Tuesday")]

    by_agent = (await client.get("/usage", params={"by": "agent"}, headers=ALICE)).json()
    secretary = {"requests": 5, "input_tokens": 650, "output_tokens": 76, "runs": 2}
    assert {u["key"]: {k: u[k] for k in secretary} for u in by_agent} == {
        "secretary": secretary,
        "summarizer": {"requests": 1, "input_tokens": 70, "output_tokens": 9, "runs": 1},
    }
    priced = {u["key"]: u["cost_usd"] for u in by_agent}
    assert priced["secretary"] == pytest.approx(cost(650, 76)) and priced["summarizer"] is None
    for by, key in (("user", "alice"), ("session", "s1")):
        (total,) = (await client.get("/usage", params={"by": by}, headers=ALICE)).json()
        assert (total["key"], total["requests"], total["input_tokens"], total["runs"]) == (
            key, 6, 720, 2,
        )  # fmt: skip
        assert total["cost_usd"] == pytest.approx(cost(650, 76))

    after = await scrape(client)
    series = "whisp_agent_tokens_total"
    large = {"agent": "secretary", "provider": "openai", "model": "stub-large"}
    small = {"agent": "summarizer", "provider": "edge", "model": "stub-small"}
    assert grew(before, after, series, **large, direction="input") == 650
    assert grew(before, after, series, **large, direction="output") == 76
    assert grew(before, after, series, **small, direction="output") == 9
    assert grew(before, after, "whisp_agent_model_requests_total", **small) == 1
    assert grew(before, after, "whisp_agent_cost_usd_total", **large) == pytest.approx(
        cost(650, 76)
    )
    assert grew(before, after, "whisp_agent_user_tokens_total", user="alice",
                direction="input") == 720  # fmt: skip
    assert grew(before, after, "whisp_agent_user_model_requests_total", user="alice") == 6
    assert grew(before, after, "whisp_agent_user_cost_usd_total", user="alice") == pytest.approx(
        cost(650, 76)
    )
    session = {"user": "alice", "session": "s1"}
    assert after[("whisp_agent_session_tokens",
                  frozenset({**session, "direction": "output"}.items()))] == 85  # fmt: skip
    assert after[("whisp_agent_session_model_requests", frozenset(session.items()))] == 6
    assert after[("whisp_agent_session_cost_usd", frozenset(session.items()))] == pytest.approx(
        cost(650, 76)
    )
    assert after[("whisp_agent_active_sessions", frozenset())] == 1


async def test_offline_the_secretary_is_listed_unavailable_with_the_reason(
    tmp_path: Path, bus_settings: BusSettings
) -> None:
    """The default desk: agents on the local model, no API key. The local provider has no
    tool calls, so the secretary (tools and a handoff) cannot fall back to it."""
    settings = AgentSettings(registry=[SHIPPED], data_dir=tmp_path / "data")
    assert settings.all_providers()["local"].supports_tools is False
    app = await serve(settings, bus_settings)
    # No lifespan: nothing here touches the bus, and stopping a bus straight after it
    # started can hang (its trimmer's first Redis call swallows the cancellation).
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://agents") as c:
        agents = {a["id"]: a for a in (await c.get("/agents")).json()["agents"]}
        response = await c.post("/run", json={"agent": "secretary", "input": "note this"})
    await app.state.store.close()
    secretary = agents.pop("secretary")
    assert secretary["available"] is False
    assert secretary["problem"] == (
        "provider 'openai' (used by 'secretary') has no API key configured (set "
        "WHISP_AGENTS__OPENAI_API_KEY or OPENAI_API_KEY); 'secretary' calls tools (handoffs "
        "are tool calls too), which the local model cannot, so it cannot run offline"
    )
    assert all(a["available"] and a["provider"] == "local" for a in agents.values()), agents
    assert response.status_code == 422
    assert response.json()["code"] == "agent_config_error"
    assert secretary["problem"] in response.json()["message"]
