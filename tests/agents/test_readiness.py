"""The agent service is ready once the local model it defaults to is warm (checked until
seen once, then remembered: a model that goes away later fails runs, not the service)."""

from __future__ import annotations

from pathlib import Path

import httpx

from whisp_agent.app import LocalModelWarm, uses_local_model
from whisp_agent.settings import AgentSettings, LocalLLMSettings, ProviderSettings


async def test_ready_once_the_local_model_said_ready() -> None:
    answers = iter([503, 200, 503])

    def handler(_request: httpx.Request) -> httpx.Response:
        status = next(answers)
        return httpx.Response(status, json={"status": "ready" if status == 200 else "loading"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        check = LocalModelWarm("http://llm/readyz", http)
        assert await check() is False  # still loading or warming up
        assert await check() is True
        assert await check() is True  # remembered: no third request
    assert next(answers) == 503


async def test_an_unreachable_model_is_not_ready() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        assert await LocalModelWarm("http://llm/readyz", http)() is False


def test_only_agents_on_the_bundled_model_wait_for_it(tmp_path: Path) -> None:
    assert uses_local_model(AgentSettings(data_dir=tmp_path))
    assert not uses_local_model(AgentSettings(default_provider="openai", data_dir=tmp_path))
    off = LocalLLMSettings(enabled=False)
    assert not uses_local_model(AgentSettings(local_llm=off, data_dir=tmp_path))
    elsewhere = {"local": ProviderSettings(base_url="http://ollama:11434/v1")}
    assert not uses_local_model(AgentSettings(providers=elsewhere, data_dir=tmp_path))
