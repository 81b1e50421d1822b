"""The agent service's HTTP face: every refusal in the one shared error body, and who may
read what (the service token, the user header, usage across users)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from tests.agents.chat_stub import ChatStub, Reply, error
from tests.agents.conftest import make_settings, sse_events
from whisp_agent.app import create_app
from whisp_agent.store import UsageRow
from whisp_shared.bus import EventBus
from whisp_shared.config import BusSettings

ERROR_KEYS = {"code", "message", "retryable"}
TOKEN = "agents-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class Service:
    app: FastAPI
    client: httpx.AsyncClient


ServiceFactory = Callable[..., AbstractAsyncContextManager[Service]]


@pytest.fixture
def make_service(tmp_path: Path, bus_settings: BusSettings, chat_stub: ChatStub) -> ServiceFactory:
    """An agent service built with these extra settings (token, mode, limits), running."""

    @asynccontextmanager
    async def build(**extra: Any) -> AsyncIterator[Service]:
        app = create_app(make_settings(tmp_path, chat_stub.base_url, **extra),
                         EventBus(bus_settings))  # fmt: skip
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://agents") as c:
                yield Service(app, c)

    return build


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    body: dict[str, object] = response.json()
    assert response.status_code == status, response.text
    assert set(body) == ERROR_KEYS
    assert body["code"] == code and body["message"] and body["retryable"] is False
    return body


async def test_bad_requests_and_unknown_routes_answer_the_shared_error_body(
    make_service: ServiceFactory,
) -> None:
    async with make_service(max_input_chars=10) as service:
        client = service.client
        not_json = await client.post(
            "/run", content=b"{not json", headers={"Content-Type": "application/json"}
        )
        assert_error(not_json, 422, "invalid_request")
        missing = assert_error(await client.post("/chat", json={"agent": "expert"}), 422,
                               "invalid_request")  # fmt: skip
        assert "field 'input' is required" in str(missing["message"])
        ghost = assert_error(await client.post("/run", json={"agent": "ghost", "input": "hi"}),
                             404, "unknown_agent")  # fmt: skip
        assert "known: " in str(ghost["message"]) and "expert" in str(ghost["message"])
        stream = await client.post("/run/stream", json={"agent": "ghost", "input": "hi"})
        assert_error(stream, 404, "unknown_agent")
        long = await client.post("/run", json={"agent": "expert", "input": "x" * 11})
        assert_error(long, 413, "input_too_long")
        nowhere = assert_error(await client.get("/nowhere"), 404, "not_found")
        assert nowhere["message"] == "no such resource"
        assert_error(await client.get("/run"), 405, "method_not_allowed")


async def test_a_failure_after_output_started_is_an_error_event_with_the_same_body(
    make_service: ServiceFactory, chat_stub: ChatStub
) -> None:
    chat_stub.push(Reply(text="A-out"), error(401, "Incorrect API key provided"))
    async with make_service() as service:
        response = await service.client.post(
            "/run/stream", json={"agent": "three", "input": "notes"}
        )
    assert response.status_code == 200
    events = sse_events(response.text)
    kinds = [kind for kind, _ in events]
    assert [kind for kind in kinds if kind in ("stage", "error")] == ["stage", "stage", "error"]
    assert "delta" in kinds[: kinds.index("error")]  # the first stage's answer went out first
    _, data = events[-1]
    assert set(data) == {*ERROR_KEYS, "retry_after"}
    assert (data["code"], data["retryable"], data["retry_after"]) == ("upstream_auth", False, None)


async def test_the_service_token_is_required_when_configured(
    make_service: ServiceFactory,
) -> None:
    async with make_service(service_token=SecretStr(TOKEN)) as service:
        client = service.client
        missing = await client.get("/notes")
        assert_error(missing, 401, "unauthorized")
        assert missing.headers["WWW-Authenticate"] == "Bearer"
        wrong = await client.get("/notes", headers={"Authorization": "Bearer nope"})
        assert_error(wrong, 401, "unauthorized")
        assert (await client.get("/notes", headers=AUTH)).status_code == 200


async def test_outside_local_mode_a_call_must_name_its_user(
    make_service: ServiceFactory,
) -> None:
    async with make_service(mode="production", service_token=SecretStr(TOKEN)) as service:
        assert_error(await service.client.get("/notes", headers=AUTH), 400, "missing_user")
        named = await service.client.get("/notes", headers={**AUTH, "X-Whisp-User": "alice"})
        assert named.status_code == 200 and named.json() == []


def row(user_id: str, tokens: int) -> UsageRow:
    return UsageRow(
        user_id=user_id, session_id=None, run_id=f"run-{user_id}", target="expert",
        agent_id="expert", provider="stub", model="stub-model", requests=1,
        input_tokens=tokens, output_tokens=1, cost_usd=None,
    )  # fmt: skip


async def usage_keys(service: Service, headers: dict[str, str], **params: str) -> list[str]:
    response = await service.client.get("/usage", params={"by": "user", **params},
                                        headers=headers)  # fmt: skip
    assert response.status_code == 200, response.text
    return [total["key"] for total in response.json()]


@pytest.mark.parametrize(
    ("settings", "headers", "everyone", "own"),
    [
        pytest.param({}, {"X-Whisp-User": "alice"}, ["alice", "bob"], ["alice"],
                     id="local-desk"),
        pytest.param({}, {}, ["alice", "bob"], [], id="local-no-user"),
        pytest.param({"mode": "production", "service_token": SecretStr(TOKEN)},
                     {**AUTH, "X-Whisp-User": "alice"}, ["alice", "bob"], ["alice"],
                     id="token-proved"),
        pytest.param({"mode": "production"}, {"X-Whisp-User": "alice"}, ["alice"], ["alice"],
                     id="production-no-token"),
    ],
)  # fmt: skip
async def test_usage_across_users_only_for_services_and_the_local_desk(
    make_service: ServiceFactory,
    settings: dict[str, object],
    headers: dict[str, str],
    everyone: list[str],
    own: list[str],
) -> None:
    """A caller that proved the service token reads every user's usage on request, even when
    it names a user (the gateway asks for one); without a token only the local desk does."""
    async with make_service(**settings) as service:
        await service.app.state.store.record_usage([row("alice", 10), row("bob", 20)])
        assert await usage_keys(service, headers, all_users="true") == everyone
        assert await usage_keys(service, headers) == own
