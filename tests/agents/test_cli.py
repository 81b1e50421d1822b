"""`whisp agent …` / `whisp agents …` as a person runs them: the real CLI process against the
real gateway in front of the real agent service (its model a local chat-completions
stand-in), so the commands go through the one door, as after `make run`."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.agents.chat_stub import ChatStub, Reply
from tests.agents.conftest import REGISTRY, write_registry
from tests.support.processes import Services
from tests.support.processes import service as service_spec
from whisp_agent.framing import unframe
from whisp_cli.redis_server import RedisServer, free_port

WHISP = [sys.executable, "-m", "whisp_cli.main"]
ROOT = Path(__file__).parents[2]


@pytest.fixture
def service(tmp_path: Path, redis_server: RedisServer, chat_stub: ChatStub) -> Iterator[str]:
    """The gateway (what the CLI talks to) in front of the agent service (its model the
    local chat-completions stand-in), both real processes."""
    agents_port = free_port()
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "logging": {"level": "WARNING"},
        "agents": {
            "registry": [str(write_registry(tmp_path / "agents", REGISTRY))],
            "default_provider": "stub",
            "providers": {"stub": {"base_url": chat_stub.base_url, "model": "stub-model"}},
            "data_dir": str(tmp_path / "data"),
        },
        "web": {"database_url": f"sqlite:///{tmp_path}/gateway.db"},
    }))  # fmt: skip
    env = {"WHISP_CONFIG": str(config)}
    agents = service_spec("agents", port=agents_port, env=env)
    gateway = service_spec(
        "gateway", env={**env, "WHISP_WEB__AGENT_SERVICE_URL": f"http://127.0.0.1:{agents_port}"}
    )
    with Services(
        [agents, gateway], log_dir=tmp_path / "logs", redis_url=redis_server.url
    ) as running:
        yield running["gateway"].url


def whisp(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run([*WHISP, *args], input=stdin, capture_output=True, text=True,
                          env=env, timeout=60, check=False)  # fmt: skip


def test_run_with_text_argument_streams_the_answer(service: str, chat_stub: ChatStub) -> None:
    chat_stub.push(Reply(text="forty two"))
    done = whisp("agent", "run", "expert", "what is six times seven", "--url", service)
    assert done.returncode == 0, done.stderr
    assert "expert: forty two" in done.stdout
    assert "11 in / 7 out tokens" in done.stderr


def test_run_from_stdin_without_streaming(service: str, chat_stub: ChatStub) -> None:
    chat_stub.push(Reply(text="piped answer"))
    done = whisp("agent", "run", "expert", "--no-stream", "--url", service, stdin="from a pipe\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "piped answer"
    sent = chat_stub.completions[-1].body["messages"][-1]["content"]
    assert unframe(sent) == "from a pipe"  # the dictation reaches the model as framed data


def test_run_reports_service_errors_with_their_code(service: str, chat_stub: ChatStub) -> None:
    done = whisp("agent", "run", "ghost", "hi", "--url", service)
    assert done.returncode == 1
    assert "unknown_agent (HTTP 404)" in done.stderr


def test_chat_repl_remembers_and_shows_attributed_history(
    service: str, chat_stub: ChatStub
) -> None:
    chat_stub.push(Reply(text="Hello Ann"), Reply(text="You are Ann"))
    done = whisp("agent", "chat", "expert", "--url", service, "--session", "t1",
                 stdin="I am Ann\nWho am I?\n/history\n/exit\n")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "expert: Hello Ann" in done.stdout and "expert: You are Ann" in done.stdout
    sent = [unframe(m["content"]) for m in chat_stub.completions[1].body["messages"]]
    assert sent[-3:] == ["I am Ann", "Hello Ann", "Who am I?"]
    history = done.stdout.split("you> ")[-2]  # what /history printed
    assert "you: I am Ann" in " ".join(history.split())
    assert "expert: Hello Ann" in " ".join(history.split())


def test_agents_list(service: str) -> None:
    done = whisp("agents", "list", "--url", service)
    assert done.returncode == 0, done.stderr
    assert "helper" in done.stdout and "pipeline three: stage_a → middle → stage_c" in done.stdout


def test_validate_lists_every_problem_and_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("agents:\n  providers:\n    cloud: {base_url: 'http://127.0.0.1:9/v1'}\n")
    monkeypatch.setenv("WHISP_CONFIG", str(config))
    done = whisp("agents", "validate", str(ROOT / "tests/agents/broken_registry"))
    assert done.returncode == 1
    assert "invalid: 14 problem(s)" in done.stderr
    assert "unknown tool 'serch_transcripts'" in done.stderr
    assert "handoff cycle ping → pong → ping" in done.stderr


def test_validate_accepts_the_shipped_registry() -> None:
    done = whisp("agents", "validate", str(ROOT / "agent-service/agents"))
    assert done.returncode == 0, done.stderr
    assert "valid: 6 agent(s), 1 pipeline(s)" in done.stdout


def test_validate_does_not_load_the_agent_sdk() -> None:
    code = ("import sys, whisp_cli.main; from whisp_agent.registry import load_registry; "
            "from whisp_agent.tools import builtin_tools; from whisp_agent.settings import "
            "AgentSettings; print(sorted(m for m in ('agents', 'openai', "
            "'llama_cpp') if m in sys.modules))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    assert out.strip() == "[]"
