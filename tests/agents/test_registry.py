"""Registry validation: a folder of broken files, every problem reported at once, precisely."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from whisp_agent.registry import RegistryError, load_registry
from whisp_agent.settings import AgentSettings, ProviderSettings
from whisp_agent.tools import builtin_tools

BROKEN = Path(__file__).parent / "broken_registry"

EXPECTED = {
    ("bad_guardrail.yaml", "guardrails[0].type",
     "unknown guardrail type 'profanity' (known: max_chars, blocked_terms)"),
    ("bad_guardrail.yaml", "guardrails[1].max_chars", "a max_chars guardrail needs max_chars"),
    ("bad_verbosity.yaml", "verbosity", "'chatty' is not one of concise, normal, verbose"),
    ("cycle.yaml", "agents[0].delegate_to",
     "handoff cycle ping → pong → ping; pipeline(s) loop reach it"),
    ("missing_instructions.yaml", "instructions",
     "missing instructions (the agent's system prompt)"),
    ("not_yaml.yaml", "line 2", "not valid YAML: expected ',' or ']', but got ':'"),
    ("ok_base.yaml", "id", "id 'base' is already used in {dir}/duplicate.yaml"),
    ("tools_on_local.yaml", "tools",
     "the default provider 'local' cannot call tools, so an agent with tools cannot run on it "
     "(handoffs are tool calls too); choose a provider with supports_tools: true, "
     "e.g. `provider: openai`"),
    ("typo_field.yaml", "model_settings.temperature", "Input should be less than or equal to 2"),
    ("typo_field.yaml", "tool", "unknown field"),
    ("unknown_handoff.yaml", "delegate_to[1]",
     "unknown handoff target 'ghost' (known: base, chatty, delegator, elsewhere, guarded, "
     "local_tools, mute, ping, pong, toolish, typo)"),
    ("unknown_provider.yaml", "provider",
     "unknown provider 'anthropic' (known: cloud, local, openai)"),
    ("unknown_stage.yaml", "stages[1].agent",
     "unknown agent 'sumarizer' (known: base, chatty, delegator, elsewhere, guarded, "
     "local_tools, mute, ping, pong, toolish, typo)"),
    ("unknown_tool.yaml", "tools[1]",
     "unknown tool 'serch_transcripts'; did you mean 'search_transcripts'? "
     "(known: calculator, current_time, search_transcripts, write_note)"),
}  # fmt: skip


def settings() -> AgentSettings:
    return AgentSettings(providers={"cloud": ProviderSettings(base_url="http://127.0.0.1:9/v1")})


def load(path: Path) -> None:
    load_registry([path], settings(), builtin_tools().names())


def test_every_problem_is_reported_at_once_with_file_and_field() -> None:
    with pytest.raises(RegistryError) as caught:
        load(BROKEN)
    got = {(Path(p.file).name, p.field, p.message) for p in caught.value.problems}
    expected = {(f, fld, msg.format(dir=BROKEN)) for f, fld, msg in EXPECTED}
    assert got == expected
    assert str(caught.value).startswith(f"agent registry is invalid ({len(EXPECTED)} problem(s))")


@pytest.mark.parametrize("name", sorted({e[0] for e in EXPECTED} - {"ok_base.yaml"}))
def test_each_broken_file_alone_gives_its_own_message(tmp_path: Path, name: str) -> None:
    """Each file next to the valid one it refers to yields exactly its own problems."""
    folder = tmp_path / "agents"
    folder.mkdir()
    shutil.copy(BROKEN / name, folder / name)
    shutil.copy(BROKEN / "ok_base.yaml", folder / "ok_base.yaml")
    with pytest.raises(RegistryError) as caught:
        load(folder)
    mine = {(fld, msg) for f, fld, msg in EXPECTED if f == name}
    got = {(p.field, p.message) for p in caught.value.problems}
    if name in ("unknown_handoff.yaml", "unknown_stage.yaml"):
        assert {fld for fld, _ in got} == {fld for fld, _ in mine}  # known-list differs alone
    else:
        assert got == mine


def test_shipped_default_registry_is_valid() -> None:
    root = Path(__file__).parents[2] / "agent-service" / "agents"
    registry = load_registry([root], AgentSettings(), builtin_tools().names())
    assert {"assistant", "summarizer", "action_items", "secretary"} <= set(registry.agents)
    assert list(registry.pipelines) == ["meeting"]


def test_missing_path_and_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="no such file or folder"):
        load(tmp_path / "nope")
    with pytest.raises(RegistryError, match=r"no agent files \(\*.yaml, \*.yml\) found"):
        load(tmp_path)
