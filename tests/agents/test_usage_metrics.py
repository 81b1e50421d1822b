"""Usage over real HTTP (the chat-completions stand-in), streamed and not: the requests and
tokens each model call reports reach the run's outcome, the usage table and the Prometheus
series per agent, user and session; a failed run still books what it spent; the session
series stay bounded (a time window and a cap) and so do the user labels."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.agents.chat_stub import ChatStub, Reply, ToolCall, calls, error
from tests.agents.conftest import Rig, make_rig, make_settings
from whisp_agent.metrics import OTHER_USER, ActiveSessions, UserLabels
from whisp_agent.runs import RunOutcome, RunRequest
from whisp_agent.store import Store, UsageRow
from whisp_shared.upstream import UpstreamAuth

AGENT = {"agent": "helper", "provider": "stub", "model": "stub-model"}
DIRECTIONS = ("input", "output")


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def run(rig: Rig, request: RunRequest, streamed: bool) -> RunOutcome:
    if not streamed:
        return await rig.runtime.run(request)
    outcome = None
    async for event in rig.runtime.stream(request):
        outcome = event.outcome or outcome
    assert outcome is not None
    return outcome


def fresh_user() -> str:
    """The metrics are the process's: a user of its own keeps a test's figures apart."""
    return f"user-{uuid.uuid4().hex[:8]}"


@pytest.mark.parametrize("streamed", [False, True], ids=["whole", "streamed"])
async def test_every_model_call_is_counted_per_agent_user_and_session(
    tmp_path: Path, chat_stub: ChatStub, streamed: bool
) -> None:
    rig = make_rig(make_settings(tmp_path, chat_stub.base_url))
    user = fresh_user()
    chat_stub.push(
        calls(ToolCall("calculator", {"expression": "2 + 2"}), prompt_tokens=13,
              completion_tokens=4),
        Reply(text="It is 4.", prompt_tokens=29, completion_tokens=8),
    )  # fmt: skip
    before = {d: value("whisp_agent_tokens_total", **AGENT, direction=d) for d in DIRECTIONS}
    requests_before = value("whisp_agent_model_requests_total", **AGENT)
    request = RunRequest(target="helper", text="2+2?", user_id=user, session_id="s")
    outcome = await run(rig, request, streamed)

    assert all(s.body.get("stream", False) is streamed for s in chat_stub.completions)
    assert outcome.output == "It is 4."
    assert outcome.usage.model_dump() == {
        "requests": 2, "input_tokens": 42, "output_tokens": 12, "total_tokens": 54,
    }  # fmt: skip
    (row,) = await rig.store.usage_totals("agent", user_id=user)
    assert (row.key, row.requests, row.input_tokens, row.output_tokens, row.runs) == (
        "helper", 2, 42, 12, 1,
    )  # fmt: skip
    assert value("whisp_agent_model_requests_total", **AGENT) - requests_before == 2
    after = {d: value("whisp_agent_tokens_total", **AGENT, direction=d) for d in DIRECTIONS}
    assert {d: after[d] - before[d] for d in DIRECTIONS} == {"input": 42, "output": 12}
    assert value("whisp_agent_user_tokens_total", user=user, direction="input") == 42
    assert value("whisp_agent_user_tokens_total", user=user, direction="output") == 12
    assert value("whisp_agent_user_model_requests_total", user=user) == 2
    assert value("whisp_agent_session_tokens", user=user, session="s", direction="input") == 42
    assert value("whisp_agent_user_cost_usd_total", user=user) == 0  # no price configured


async def test_a_stream_without_usage_counts_its_text_chunks(
    tmp_path: Path, chat_stub: ChatStub
) -> None:
    """A server that sends no usage chunk (llama.cpp's own): output is estimated from the
    text chunks (about a token each) rather than booked as zero."""
    rig = make_rig(make_settings(tmp_path, chat_stub.base_url))
    chat_stub.push(Reply(text="one two three", stream_usage=False))
    user = fresh_user()
    outcome = await run(rig, RunRequest(target="expert", text="count", user_id=user), True)
    assert outcome.usage.model_dump() == {
        "requests": 1, "input_tokens": 0, "output_tokens": 3, "total_tokens": 3,
    }  # fmt: skip
    assert value("whisp_agent_user_tokens_total", user=user, direction="output") == 3


async def test_tokens_spent_before_a_failure_are_booked(
    tmp_path: Path, chat_stub: ChatStub
) -> None:
    """A tool call answered, then the provider refuses: the first call was billed all the
    same, so it is in the usage table and the metrics, under the run that failed."""
    rig = make_rig(make_settings(tmp_path, chat_stub.base_url))
    chat_stub.push(
        calls(ToolCall("current_time"), prompt_tokens=10, completion_tokens=2),
        error(401, "key revoked"),
    )
    user = fresh_user()
    failed = value("whisp_agent_runs_total", target="helper", outcome="upstream_auth")
    with pytest.raises(UpstreamAuth) as caught:
        await rig.runtime.run(RunRequest(target="helper", text="time?", user_id=user))
    assert caught.value.code == "upstream_auth"
    (row,) = await rig.store.usage_totals("user", user_id=user)
    assert (row.requests, row.input_tokens, row.output_tokens, row.runs) == (1, 10, 2, 1)
    assert value("whisp_agent_user_tokens_total", user=user, direction="input") == 10
    assert value("whisp_agent_runs_total", target="helper", outcome="upstream_auth") == failed + 1


def usage_row(user: str, session: str | None, tokens: int, cost: float | None = None) -> UsageRow:
    return UsageRow(
        user_id=user, session_id=session, run_id=uuid.uuid4().hex, target="expert",
        agent_id="expert", provider="stub", model="stub-model", requests=1,
        input_tokens=tokens, output_tokens=1, cost_usd=cost,
    )  # fmt: skip


def exported(collector: ActiveSessions) -> dict[tuple[str, tuple[str, ...]], float]:
    """The collector's series as a scrape sees them (its own registry, real exposition)."""
    registry = CollectorRegistry()
    registry.register(collector)
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(s.labels.get(k, "") for k in ("user", "session", "direction"))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_session_series_are_the_most_recent_sessions_with_their_whole_totals(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path / "agent.sqlite")
    collector = ActiveSessions(window_s=60, limit=2)
    collector.watch(store)
    await store.record_usage([usage_row("ann", "old", 5)])
    await store.record_usage([usage_row("ann", "mid", 7), usage_row("bob", "new", 1, 0.25)])
    await store.record_usage([usage_row("ann", "old", 100)])  # "old" is active again
    await store.record_usage([usage_row("bob", "new", 2)])
    await store.record_usage([usage_row("ann", None, 9)])
    series = exported(collector)
    assert series[("whisp_agent_active_sessions", ("", "", ""))] == 3
    tokens = {k[1]: v for k, v in series.items() if k[0] == "whisp_agent_session_tokens"}
    assert tokens == {
        ("bob", "new", "input"): 3, ("bob", "new", "output"): 2,
        ("ann", "old", "input"): 105, ("ann", "old", "output"): 2,
    }  # fmt: skip
    costs = {k[1]: v for k, v in series.items() if k[0] == "whisp_agent_session_cost_usd"}
    assert costs == {("bob", "new", ""): 0.25}  # "old" has no priced run: no cost series
    await store.close()
    assert exported(collector)[("whisp_agent_active_sessions", ("", "", ""))] == 0


async def test_a_quiet_session_leaves_the_series(tmp_path: Path) -> None:
    store = Store(tmp_path / "agent.sqlite")
    collector = ActiveSessions(window_s=0.3, limit=10)
    collector.watch(store)
    await store.record_usage([usage_row("ann", "quiet", 5), usage_row("ann", "busy", 1)])
    time.sleep(0.4)
    await store.record_usage([usage_row("ann", "busy", 2)])
    tokens = {k[1]: v for k, v in exported(collector).items()
              if k[0] == "whisp_agent_session_tokens"}  # fmt: skip
    assert tokens == {("ann", "busy", "input"): 3, ("ann", "busy", "output"): 2}
    await store.close()


def test_user_labels_stop_growing_at_the_cap() -> None:
    label = UserLabels(2)
    assert [label(u) for u in ("ann", "bob", "eve", "ann", "mallory")] == [
        "ann", "bob", OTHER_USER, "ann", OTHER_USER,
    ]  # fmt: skip
