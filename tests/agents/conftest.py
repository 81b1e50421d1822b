"""Fixtures for agent-service tests: an isolated config, a small registry, a runtime."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from agents import set_tracing_disabled

from tests.agents.chat_stub import ChatStub
from whisp_agent.build import AgentFactory, ModelSource, OpenAIModels
from whisp_agent.registry import load_registry
from whisp_agent.runtime import AgentRuntime
from whisp_agent.sessions import SQLiteSessions
from whisp_agent.settings import AgentSettings, ProviderSettings
from whisp_agent.store import Store
from whisp_agent.tools import ToolDeps, builtin_tools

REGISTRY = """
agents:
  - id: helper
    instructions: Help; use tools; hand specialist questions to the expert.
    tools: [calculator, write_note, current_time]
    delegate_to: [expert]
  - id: expert
    description: Knows everything.
    instructions: Answer as an expert.
    verbosity: verbose
  - id: guarded
    instructions: Chat.
    guardrails:
      - {type: blocked_terms, terms: [password]}
      - {type: max_chars, max_chars: 50}
  - id: looper
    instructions: Keep calling tools.
    tools: [current_time]
    max_turns: 2
  - id: forgetful
    instructions: Chat.
    memory: false
  - id: poet
    instructions: Rhyme.
    verbosity: concise
    model_settings: {temperature: 1.1}
  - id: stage_a
    instructions: Stage A.
  - id: stage_b
    instructions: Stage B.
  - id: stage_c
    instructions: Stage C.
pipelines:
  - id: three
    stages:
      - stage_a
      - {agent: stage_b, name: middle, prompt: "Previous: {input} / Original: {original}"}
      - stage_c
"""


@pytest.fixture(autouse=True)
def _isolated_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No repository config.yaml, no real keys: tests say everything they rely on."""
    monkeypatch.setenv("WHISP_CONFIG", str(tmp_path / "absent-config.yaml"))
    for name in ("OPENAI_API_KEY", "WHISP_AGENTS__OPENAI_API_KEY", "WHISP_AGENTS__SERVICE_TOKEN",
                 "DATABASE_URL", "WHISP_AGENTS__DATABASE_URL"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    set_tracing_disabled(True)


def write_registry(folder: Path, text: str = REGISTRY, name: str = "registry.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)
    return folder


def make_settings(
    tmp_path: Path,
    base_url: str = "http://127.0.0.1:9/v1",
    registry: str = REGISTRY,
    **extra: object,
) -> AgentSettings:
    """A `stub` provider (tools allowed) as the default; data under tmp_path."""
    fields: dict[str, object] = {
        "registry": [write_registry(tmp_path / "agents", registry)],
        "default_provider": "stub",
        "providers": {
            "stub": ProviderSettings(
                base_url=base_url, model="stub-model", max_attempts=3, max_backoff_s=2.0
            )
        },
        "data_dir": tmp_path / "data",
        **extra,
    }
    return AgentSettings(**fields)  # type: ignore[arg-type]


@dataclass
class Rig:
    runtime: AgentRuntime
    store: Store
    sessions: SQLiteSessions
    settings: AgentSettings


def make_rig(settings: AgentSettings, models: ModelSource | None = None) -> Rig:
    registry = load_registry(settings.registry, settings, builtin_tools().names())
    store = Store(settings.data_dir / "agent.sqlite")
    sessions = SQLiteSessions(settings.data_dir / "sessions.sqlite")
    factory = AgentFactory(registry, settings, builtin_tools(), models or OpenAIModels(settings))
    runtime = AgentRuntime(
        registry, settings, factory, sessions, store, ToolDeps(user_id="", notes=store)
    )
    return Rig(runtime, store, sessions, settings)


def sse_events(text: str) -> list[tuple[str, dict[str, object]]]:
    """(event, data) of each server-sent event in a response body."""
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in lines:
            events.append((lines["event"], json.loads(lines["data"])))
    return events


@pytest.fixture
def chat_stub() -> Iterator[ChatStub]:
    with ChatStub() as stub:
        yield stub
