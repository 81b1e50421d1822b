"""The bus path with a real Redis: TranscriptReady(agent_id) → exactly one AgentResponded,
also when the consumer is SIGKILLed mid-run; unknown agents → AgentFailed(unknown_agent)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import yaml
from redis.asyncio import Redis

from tests.agents.chat_stub import ChatStub, Reply
from tests.agents.conftest import REGISTRY, make_settings, write_registry
from tests.integration.bus_helpers import depth_exported, stream_events, wait_for
from tests.unit.k8s_render import keda_watches
from whisp_agent.app import create_app
from whisp_cli.redis_server import free_port
from whisp_shared.bus import EventBus
from whisp_shared.bus_depth import GROUP_LAG, GROUP_PENDING
from whisp_shared.config import BusSettings
from whisp_shared.events import AgentFailed, AgentResponded, TranscriptReady
from whisp_shared.streams import AGENTS_GROUP, RESPONSES, TRANSCRIPTS


def transcript(recording_id: str, text: str = "hello", **kw: object) -> TranscriptReady:
    return TranscriptReady(
        recording_id=recording_id, user_id="alice", text=text, engine="test", model="none",
        audio_duration_s=1.0, processing_s=0.1, real_time_factor=0.1, **kw,
    )  # fmt: skip


async def test_transcript_with_agent_id_yields_one_agent_responded(
    tmp_path: Path, bus_settings: BusSettings, redis: Redis, chat_stub: ChatStub
) -> None:
    chat_stub.default = Reply(text="Hi there", prompt_tokens=12, completion_tokens=3)
    # A slow reclaim: on a loaded machine a late heartbeat must not start a second attempt.
    bus = EventBus(bus_settings.model_copy(update={"claim_idle_ms": 10_000}))
    app = create_app(make_settings(tmp_path, chat_stub.base_url), bus)
    async with app.router.lifespan_context(app):
        await bus.publish(TRANSCRIPTS, transcript("rec-1", agent_id="expert", session_id="s1"))
        await bus.publish(TRANSCRIPTS, transcript("rec-2", agent_id="ghost"))
        await bus.publish(TRANSCRIPTS, transcript("rec-3"))  # no agent asked: ignored
        await bus.publish(TRANSCRIPTS, transcript("rec-4", pipeline="three", text="notes"))

        async def three_answers() -> bool:
            return len(await stream_events(redis, RESPONSES)) >= 3

        await wait_for(three_answers, timeout=15)
    events = {e.recording_id: e for e in await stream_events(redis, RESPONSES)}
    assert set(events) == {"rec-1", "rec-2", "rec-4"}
    ok = events["rec-1"]
    assert isinstance(ok, AgentResponded)
    assert (ok.agent_id, ok.output, ok.session_id, ok.user_id) == ("expert", "Hi there", "s1",
                                                                   "alice")  # fmt: skip
    assert (ok.usage.input_tokens, ok.usage.output_tokens) == (12, 3)
    failed = events["rec-2"]
    assert isinstance(failed, AgentFailed)
    assert (failed.code, failed.agent_id, failed.retryable) == ("unknown_agent", "ghost", False)
    piped = events["rec-4"]
    assert isinstance(piped, AgentResponded)
    assert (piped.pipeline, piped.agent_id) == ("three", "stage_c")
    assert len(chat_stub.completions) == 4  # 1 agent run + 3 pipeline stages, nothing twice


def worker_config(tmp_path: Path, chat_stub: ChatStub) -> Path:
    """config.yaml for an agent service in its own process: the stand-in as its model, fast
    reclaim (a killed worker's run is taken over within a second)."""
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "bus": {"claim_idle_ms": 600, "read_block_ms": 100, "max_deliveries": 3},
        "logging": {"level": "WARNING"},
        "agents": {
            "registry": [str(write_registry(tmp_path / "agents", REGISTRY))],
            "default_provider": "stub",
            "providers": {"stub": {"base_url": chat_stub.base_url, "model": "stub-model"}},
            "data_dir": str(tmp_path / "data"),
        },
    }))  # fmt: skip
    return config


def _service(config: Path, redis_url: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "WHISP_CONFIG": str(config), "REDIS_URL": redis_url,
           "WHISP_AGENTS__PORT": str(free_port())}  # fmt: skip
    return subprocess.Popen(
        [sys.executable, "-m", "whisp_agent"], env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


async def test_sigkill_mid_run_still_yields_exactly_one_response(
    tmp_path: Path, redis_server: object, redis: Redis, chat_stub: ChatStub
) -> None:
    url = redis_server.url  # type: ignore[attr-defined]
    config = worker_config(tmp_path, chat_stub)
    chat_stub.push(Reply(text="too late", delay_s=60))  # the first worker hangs here
    chat_stub.default = Reply(text="survived")
    doomed = _service(config, url)
    survivor: subprocess.Popen[bytes] | None = None
    try:
        bus = EventBus(BusSettings(redis_url=url))
        await bus.connect()
        await bus.publish(TRANSCRIPTS, transcript("rec-kill", agent_id="expert"))
        await bus.stop()

        async def run_started() -> bool:
            return len(chat_stub.completions) >= 1

        await wait_for(run_started, timeout=30)
        os.killpg(doomed.pid, signal.SIGKILL)  # mid-run: the model call is in flight
        doomed.wait()
        survivor = _service(config, url)

        async def answered() -> bool:
            return bool(await stream_events(redis, RESPONSES))

        await wait_for(answered, timeout=30)
        await asyncio.sleep(1.5)  # room for a wrong second answer to show up
        events = await stream_events(redis, RESPONSES)
        assert len(events) == 1
        assert isinstance(events[0], AgentResponded) and events[0].output == "survived"
        assert len(chat_stub.completions) == 2
    finally:
        for proc in (doomed, survivor):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()


async def test_exports_lag_and_pending_of_the_stream_keda_watches(
    tmp_path: Path, bus_settings: BusSettings
) -> None:
    """The dashboard shows what KEDA scales the agents on: the agents group's lag and
    pending on the transcripts."""
    watched = keda_watches("agents")
    assert watched == {(TRANSCRIPTS, AGENTS_GROUP)}
    GROUP_LAG.clear()
    GROUP_PENDING.clear()
    app = create_app(make_settings(tmp_path), EventBus(bus_settings))
    async with app.router.lifespan_context(app):
        await wait_for(lambda: depth_exported(watched))
