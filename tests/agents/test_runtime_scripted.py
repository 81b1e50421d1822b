"""The runtime on the SDK's own ScriptedModel: no network, exact control of each model turn."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from agents import Usage
from agents.testing import ModelStep, ScriptedModel, assistant_message, function_call

from tests.agents.conftest import Rig, make_rig, make_settings
from whisp_agent.errors import GuardrailTripped, MaxTurns, UnknownAgent
from whisp_agent.framing import DATA_RULE, frame
from whisp_agent.runs import RunRequest


def usage(inp: int, out: int) -> Usage:
    return Usage(requests=1, input_tokens=inp, output_tokens=out, total_tokens=inp + out)


def rig_for(tmp_path: Path, model: ScriptedModel, **extra: Any) -> Rig:
    return make_rig(make_settings(tmp_path, **extra), models=lambda _p, _m: model)


def ask(target: str, text: str = "hi", **kw: object) -> RunRequest:
    return RunRequest(target=target, text=text, user_id=str(kw.pop("user", "alice")), **kw)


async def test_tool_call_runs_the_python_tool_and_feeds_the_result_back(tmp_path: Path) -> None:
    model = ScriptedModel([
        [function_call("calculator", {"expression": "(12.5 + 7) * 4"}, call_id="c1")],
        [assistant_message("That is 78.")],
    ])  # fmt: skip
    outcome = await rig_for(tmp_path, model).runtime.run(ask("helper", "what is (12.5+7)*4"))
    assert outcome.output == "That is 78."
    second = model.calls[1].input
    tool_outputs = [i for i in second if isinstance(i, dict) and i.get("type") ==
                    "function_call_output"]  # fmt: skip
    assert tool_outputs and "= 78" in str(tool_outputs[0]["output"])
    model.assert_complete()


async def test_note_tool_writes_for_the_caller_only_and_once_per_run_key(tmp_path: Path) -> None:
    steps = [
        [function_call("write_note", {"text": "call Bob", "kind": "action_item"}, call_id="n")],
        [assistant_message("Noted.")],
    ]
    model = ScriptedModel([*steps, *steps])
    rig = rig_for(tmp_path, model)
    for _ in range(2):  # a redelivered bus entry: same run_key
        await rig.runtime.run(ask("helper", "note: call Bob", run_key="rec-1"))
    assert [n.text for n in await rig.store.notes("alice")] == ["call Bob"]
    assert await rig.store.notes("mallory") == []


async def test_handoff_transfers_the_answer_and_attributes_it(tmp_path: Path) -> None:
    model = ScriptedModel([
        ModelStep(output=[function_call("transfer_to_expert", {}, call_id="h")],
                  usage=usage(10, 2)),
        ModelStep(output=[assistant_message("Expert answer.")], usage=usage(30, 5)),
    ])  # fmt: skip
    outcome = await rig_for(tmp_path, model).runtime.run(ask("helper", "hard question"))
    assert outcome.output == "Expert answer."
    assert outcome.agent_id == "expert"
    assert outcome.stages[0].started_with == "helper"
    assert outcome.stages[0].handoffs == ["helper->expert"]
    # Each agent's own instructions, after the rule that the dictation is data.
    prompts = [c.system_instructions or "" for c in model.calls]
    assert [p.split("\n\n")[1] for p in prompts] == [
        "Help; use tools; hand specialist questions to the expert.",
        "Answer as an expert.",
    ]
    assert all(p.startswith(DATA_RULE) for p in prompts)


async def test_three_stage_pipeline_feeds_outputs_forward_and_keeps_each(tmp_path: Path) -> None:
    model = ScriptedModel([
        [assistant_message("A-out")], [assistant_message("B-out")], [assistant_message("C-out")]
    ])  # fmt: skip
    outcome = await rig_for(tmp_path, model).runtime.run(ask("three", "raw transcript"))
    assert outcome.kind == "pipeline"
    assert [(s.name, s.agent_id, s.output) for s in outcome.stages] == [
        ("stage_a", "stage_a", "A-out"),
        ("middle", "stage_b", "B-out"),
        ("stage_c", "stage_c", "C-out"),
    ]
    assert outcome.output == "C-out"
    inputs = [c.input[-1]["content"] for c in model.calls]  # type: ignore[index]
    assert frame("raw transcript") in inputs[0]
    # The stage's template is the registry's text; what it quotes is framed as data.
    assert f"Previous: {frame('A-out')} / Original: {frame('raw transcript')}" in inputs[1]
    assert "B-out" in inputs[2]


async def test_guardrail_trip_stops_before_any_model_call(tmp_path: Path) -> None:
    model = ScriptedModel([[assistant_message("never")]])
    rig = rig_for(tmp_path, model)
    with pytest.raises(GuardrailTripped, match="blocked term") as caught:
        await rig.runtime.run(ask("guarded", "my password is hunter2"))
    assert caught.value.status == 422 and caught.value.code == "guardrail_tripped"
    with pytest.raises(GuardrailTripped, match="at most 50"):
        await rig.runtime.run(ask("guarded", "x" * 51))
    assert model.calls == ()


async def test_max_turns_exceeded_is_a_structured_error(tmp_path: Path) -> None:
    model = ScriptedModel([
        [function_call("current_time", {}, call_id=f"t{i}")] for i in range(3)
    ])  # fmt: skip
    with pytest.raises(MaxTurns) as caught:
        await rig_for(tmp_path, model).runtime.run(ask("looper"))
    assert caught.value.code == "max_turns_exceeded" and caught.value.status == 502
    assert len(model.calls) == 2


async def test_session_memory_across_two_runs_and_attributed_history(tmp_path: Path) -> None:
    model = ScriptedModel([[assistant_message("Hi Ann.")], [assistant_message("You are Ann.")]])
    rig = rig_for(tmp_path, model)
    assert not (tmp_path / "data" / "sessions.sqlite").exists()  # nothing until a session
    await rig.runtime.run(ask("expert", "I am Ann", session_id="s1"))
    await rig.runtime.run(ask("poet", "who am I?", session_id="s1"))
    second_input = str(model.calls[1].input)
    assert "I am Ann" in second_input and "Hi Ann." in second_input
    turns = await rig.sessions.history("alice", "s1")
    assert [(t.role, t.agent_id, t.text) for t in turns] == [
        ("user", None, "I am Ann"),
        ("assistant", "expert", "Hi Ann."),
        ("user", None, "who am I?"),
        ("assistant", "poet", "You are Ann."),
    ]
    assert await rig.sessions.history("mallory", "s1") == []  # same id, other user


async def test_memory_off_and_no_session_id_keep_nothing(tmp_path: Path) -> None:
    model = ScriptedModel([[assistant_message("one")], [assistant_message("two")]])
    rig = rig_for(tmp_path, model)
    await rig.runtime.run(ask("forgetful", "first", session_id="s2"))
    await rig.runtime.run(ask("forgetful", "second", session_id="s2"))
    assert "first" not in str(model.calls[1].input)
    assert not (tmp_path / "data" / "sessions.sqlite").exists()


async def test_usage_accounting_per_agent_run_and_user(tmp_path: Path) -> None:
    from whisp_agent.settings import Price

    model = ScriptedModel([
        ModelStep(output=[function_call("transfer_to_expert", {}, call_id="h")],
                  usage=usage(100, 10)),
        ModelStep(output=[assistant_message("done")], usage=usage(200, 50)),
    ])  # fmt: skip
    rig = rig_for(
        tmp_path, model, prices={"stub-model": Price(input_per_mtok=1.0, output_per_mtok=10.0)}
    )
    outcome = await rig.runtime.run(ask("helper", session_id="s9"))
    assert (outcome.usage.requests, outcome.usage.input_tokens, outcome.usage.output_tokens) == (
        2, 300, 60,
    )  # fmt: skip
    per_agent = {
        a.agent_id: (a.usage.input_tokens, a.usage.output_tokens) for a in outcome.by_agent
    }
    assert per_agent == {"helper": (100, 10), "expert": (200, 50)}
    assert outcome.cost_usd == pytest.approx((300 * 1.0 + 60 * 10.0) / 1e6)
    by_agent = {t.key: t for t in await rig.store.usage_totals("agent", user_id="alice")}
    assert by_agent["helper"].input_tokens == 100 and by_agent["expert"].output_tokens == 50
    by_session = await rig.store.usage_totals("session", user_id="alice")
    assert [(t.key, t.requests, t.runs) for t in by_session] == [("s9", 2, 1)]
    assert await rig.store.usage_totals("agent", user_id="bob") == []


async def test_verbosity_table_with_per_field_override(tmp_path: Path) -> None:
    model = ScriptedModel([[assistant_message("roses")], [assistant_message("long")]])
    rig = rig_for(tmp_path, model)
    await rig.runtime.run(ask("poet"))
    await rig.runtime.run(ask("expert"))
    poet, expert = (c.model_settings for c in model.calls)
    assert (poet.temperature, poet.max_tokens) == (1.1, 200)  # override wins, cap from table
    assert (expert.temperature, expert.max_tokens) == (0.7, 1500)
    # The hint follows the dictated text, with the task (small models recited it otherwise).
    assert "at most three sentences" in str(model.calls[0].input)
    assert "at most three sentences" not in (model.calls[0].system_instructions or "")


async def test_unknown_target_is_404_unknown_agent(tmp_path: Path) -> None:
    with pytest.raises(UnknownAgent) as caught:
        await rig_for(tmp_path, ScriptedModel()).runtime.run(ask("nobody"))
    assert caught.value.status == 404 and "helper" in caught.value.message


async def test_redis_sessions_remember_across_runs(tmp_path: Path, redis_server: object) -> None:
    """The store for several replicas: the bus's Redis keeps memory and attribution."""
    from whisp_agent.build import AgentFactory
    from whisp_agent.registry import load_registry
    from whisp_agent.runtime import AgentRuntime
    from whisp_agent.sessions import RedisSessions
    from whisp_agent.store import Store
    from whisp_agent.tools import ToolDeps, builtin_tools

    model = ScriptedModel([[assistant_message("Hi Ann.")], [assistant_message("You are Ann.")]])
    settings = make_settings(tmp_path, sessions="redis")
    registry = load_registry(settings.registry, settings, builtin_tools().names())
    sessions = RedisSessions(redis_server.url, ttl_s=60)  # type: ignore[attr-defined]
    store = Store(tmp_path / "agent.sqlite")
    factory = AgentFactory(registry, settings, builtin_tools(), lambda _p, _m: model)
    runtime = AgentRuntime(registry, settings, factory, sessions, store, ToolDeps(user_id=""))
    await runtime.run(ask("expert", "I am Ann", session_id="r1"))
    await runtime.run(ask("expert", "who am I?", session_id="r1"))
    assert "Hi Ann." in str(model.calls[1].input)
    turns = await sessions.history("alice", "r1")
    assert [t.agent_id for t in turns] == [None, "expert", None, "expert"]
    assert await sessions.history("bob", "r1") == []
    await sessions.close()
