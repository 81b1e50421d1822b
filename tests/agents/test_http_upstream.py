"""REST and SSE against a real chat-completions server (a local stand-in): retries honour
Retry-After, one retry layer only, and every failure becomes its status and code."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from tests.agents.chat_stub import ChatStub, Reply, error
from tests.agents.conftest import make_settings, sse_events
from whisp_agent.app import create_app
from whisp_agent.framing import unframe
from whisp_shared.bus import EventBus
from whisp_shared.config import BusSettings

EXTRA_AGENTS = """
  - id: cloud
    provider: openai
    instructions: Needs a key.
"""


@pytest.fixture
async def app(tmp_path: Path, bus_settings: BusSettings, chat_stub: ChatStub) -> FastAPI:
    from tests.agents.conftest import REGISTRY

    registry = REGISTRY.replace("pipelines:", EXTRA_AGENTS.strip("\n") + "\npipelines:", 1)
    settings = make_settings(tmp_path, chat_stub.base_url, registry=registry)
    return create_app(settings, EventBus(bus_settings))


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://agents") as c:
            yield c


def run(
    client: httpx.AsyncClient, text: str = "hello", agent: str = "expert", **kw: object
) -> Awaitable[httpx.Response]:
    return client.post("/run", json={"agent": agent, "input": text, **kw})


async def test_429_with_retry_after_is_waited_then_succeeds(
    client: httpx.AsyncClient, chat_stub: ChatStub
) -> None:
    chat_stub.push(error(429, "slow down", **{"Retry-After": "1"}), Reply(text="fine"))
    response = await run(client)
    assert response.status_code == 200, response.text
    assert response.json()["output"] == "fine"
    first, second = chat_stub.completions
    assert second.at - first.at >= 0.95  # the server's Retry-After, not a client guess


async def test_429_that_persists_surfaces_as_429_with_retry_after(
    client: httpx.AsyncClient, chat_stub: ChatStub
) -> None:
    chat_stub.push(*[error(429, "quota", **{"Retry-After": "1"}) for _ in range(5)])
    response = await run(client)
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "1"
    assert response.json()["code"] == "upstream_rate_limited"
    assert len(chat_stub.completions) == 3  # max_attempts, no hidden client retries on top


async def test_429_asking_longer_than_the_cap_is_not_waited(
    client: httpx.AsyncClient, chat_stub: ChatStub
) -> None:
    chat_stub.push(error(429, "come back later", **{"Retry-After": "120"}))
    response = await run(client)
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "120"
    assert len(chat_stub.completions) == 1


async def test_500_then_success(client: httpx.AsyncClient, chat_stub: ChatStub) -> None:
    chat_stub.push(error(500, "boom"), Reply(text="recovered"))
    response = await run(client)
    assert response.status_code == 200
    assert response.json()["output"] == "recovered"
    assert len(chat_stub.completions) == 2


async def test_500_every_time_is_503_with_retry_after(
    client: httpx.AsyncClient, chat_stub: ChatStub
) -> None:
    chat_stub.push(*[error(503, "down") for _ in range(3)])
    response = await run(client)
    assert response.status_code == 503
    assert response.json()["code"] == "upstream_unavailable"
    assert int(response.headers["Retry-After"]) >= 1


async def test_401_is_not_retried_and_is_502(
    client: httpx.AsyncClient, chat_stub: ChatStub
) -> None:
    chat_stub.push(error(401, "Incorrect API key provided"))
    response = await run(client)
    assert response.status_code == 502
    assert response.json()["code"] == "upstream_auth"
    assert len(chat_stub.completions) == 1


@pytest.mark.parametrize(
    "body",
    [b"this is not json", b'{"id": "x", "object": "chat.completion"}'],
    ids=["not-json", "no-choices"],
)
async def test_malformed_body_is_502_bad_response(
    client: httpx.AsyncClient, chat_stub: ChatStub, body: bytes
) -> None:
    chat_stub.push(Reply(text=None, body=body))
    response = await run(client)
    assert response.status_code == 502, response.text
    assert response.json()["code"] == "upstream_bad_response"
    assert len(chat_stub.completions) == 1


async def test_usage_from_the_server_is_counted(
    client: httpx.AsyncClient, chat_stub: ChatStub
) -> None:
    chat_stub.push(Reply(text="x", prompt_tokens=40, completion_tokens=9))
    body = (await run(client)).json()
    assert body["usage"] == {
        "requests": 1, "input_tokens": 40, "output_tokens": 9, "total_tokens": 49,
    }  # fmt: skip
    sent = chat_stub.completions[0].body
    assert sent["model"] == "stub-model" and sent["max_tokens"] == 1500  # verbose table row


async def test_sse_streams_the_answer_as_it_is_generated(
    client: httpx.AsyncClient, chat_stub: ChatStub
) -> None:
    chat_stub.push(Reply(text="one two three four"))
    response = await client.post("/run/stream", json={"agent": "expert", "input": "count"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response.text)
    deltas = [data["text"] for kind, data in events if kind == "delta"]
    assert len(deltas) == 4 and "".join(deltas) == "one two three four"  # type: ignore[arg-type]
    kind, done = events[-1]
    assert kind == "done"
    assert done["outcome"]["output"] == "one two three four"  # type: ignore[index]
    assert chat_stub.completions[0].body["stream"] is True


async def test_sse_failure_before_output_keeps_its_http_status(
    client: httpx.AsyncClient, chat_stub: ChatStub
) -> None:
    chat_stub.push(error(429, "quota", **{"Retry-After": "60"}))
    response = await client.post("/run/stream", json={"agent": "expert", "input": "x"})
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "60"


async def test_agents_lists_registry_and_unavailable_providers(client: httpx.AsyncClient) -> None:
    body = (await client.get("/agents")).json()
    agents = {a["id"]: a for a in body["agents"]}
    assert agents["helper"]["tools"] == ["calculator", "write_note", "current_time"]
    assert agents["helper"]["available"] is True
    assert agents["cloud"]["available"] is False
    assert "API key" in agents["cloud"]["problem"]
    assert [p["stages"] for p in body["pipelines"]] == [["stage_a", "middle", "stage_c"]]
    response = await run(client, agent="cloud")
    assert response.status_code == 422
    assert response.json()["code"] == "agent_config_error"


async def test_unknown_agent_and_bad_body(client: httpx.AsyncClient) -> None:
    response = await run(client, agent="ghost")
    assert response.status_code == 404
    assert response.json()["code"] == "unknown_agent"
    assert (await client.post("/chat", json={"agent": "expert", "input": "x"})).status_code == 422


async def test_chat_session_history_and_usage_per_user(
    client: httpx.AsyncClient, chat_stub: ChatStub
) -> None:
    chat_stub.push(Reply(text="Hello Ann"), Reply(text="Your name is Ann"))
    alice = {"X-Whisp-User": "alice"}
    for text in ("I am Ann", "Who am I?"):
        response = await client.post(
            "/chat", json={"agent": "expert", "input": text, "session_id": "c1"}, headers=alice
        )
        assert response.status_code == 200
    messages = chat_stub.completions[1].body["messages"]
    assert [unframe(m["content"]) for m in messages if m["role"] != "system"] == [
        "I am Ann", "Hello Ann", "Who am I?",
    ]  # fmt: skip
    history = (await client.get("/sessions/c1", headers=alice)).json()["turns"]
    assert [(t["role"], t["agent_id"]) for t in history] == [
        ("user", None), ("assistant", "expert"), ("user", None), ("assistant", "expert"),
    ]  # fmt: skip
    assert (await client.get("/sessions/c1", headers={"X-Whisp-User": "bob"})).json()["turns"] == []
    usage = (await client.get("/usage", params={"by": "session"}, headers=alice)).json()
    assert usage == [{"key": "c1", "requests": 2, "input_tokens": 22, "output_tokens": 14,
                      "cost_usd": None, "runs": 2}]  # fmt: skip


async def test_metrics_export_tokens_per_agent(
    client: httpx.AsyncClient, chat_stub: ChatStub
) -> None:
    chat_stub.push(Reply(text="x", prompt_tokens=5, completion_tokens=3))
    await run(client, agent="poet")
    text = (await client.get("/metrics")).text
    assert (
        'whisp_agent_tokens_total{agent="poet",direction="output",model="stub-model",'
        'provider="stub"}' in text
    )
