"""Turn validated specs into SDK objects: models per provider, tools, guardrails, agents.

Every provider is reached the same way — `OpenAIChatCompletionsModel` over an `AsyncOpenAI`
client pointed at the provider's base URL (OpenAI, Ollama, vLLM, the local llama.cpp server)
— wrapped in `RetryingModel`. Tests replace `ModelSource` with the SDK's `ScriptedModel`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import openai
from agents import (
    Agent,
    FunctionTool,
    GuardrailFunctionOutput,
    InputGuardrail,
    Model,
    ModelSettings,
    OpenAIChatCompletionsModel,
    RunContextWrapper,
)
from agents.handoffs import Handoff
from agents.items import TResponseInputItem
from agents.tool_context import ToolContext
from pydantic import ValidationError

from whisp_agent import framing, guardrails
from whisp_agent.errors import AgentConfigError
from whisp_agent.registry import Registry
from whisp_agent.retrying import RetryingModel, RetryPolicy
from whisp_agent.settings import LOCAL_PROVIDER, AgentSettings, ModelKnobs
from whisp_agent.spec import AgentSpec, GuardrailSpec
from whisp_agent.tools import ToolDeps, ToolFailure, ToolRegistry, ToolSpec
from whisp_shared.logs import get_logger

log = get_logger(__name__)

ModelSource = Callable[[str, str], Model]
"""(provider name, model name) → the SDK model to call."""


@dataclass(frozen=True)
class Resolved:
    """Where an agent runs."""

    provider: str
    model: str


def key_variables(settings: AgentSettings, provider: str) -> str:
    """Where the key of `provider` is read from (the environment only)."""
    env = settings.all_providers()[provider].api_key_env
    return env or "WHISP_AGENTS__OPENAI_API_KEY or OPENAI_API_KEY"


class OpenAIModels:
    """One `AsyncOpenAI` client per provider (connection pooling), client retries off."""

    def __init__(self, settings: AgentSettings) -> None:
        self.settings = settings
        self._clients: dict[str, openai.AsyncOpenAI] = {}

    def missing_key(self, provider: str) -> bool:
        conf = self.settings.all_providers()[provider]
        needs_key = conf.base_url is None or conf.api_key_env is not None
        return needs_key and self.settings.api_key(provider) is None

    def client(self, provider: str) -> openai.AsyncOpenAI:
        if provider not in self._clients:
            conf = self.settings.all_providers()[provider]
            if self.missing_key(provider):
                raise AgentConfigError(
                    f"provider '{provider}' needs an API key: set "
                    f"{key_variables(self.settings, provider)} in the environment"
                )
            self._clients[provider] = openai.AsyncOpenAI(
                api_key=self.settings.api_key(provider) or "not-needed",
                base_url=conf.base_url,
                max_retries=0,  # RetryingModel is the only retry layer
                timeout=conf.timeout_s,
            )
        return self._clients[provider]

    def __call__(self, provider: str, model: str) -> Model:
        conf = self.settings.all_providers()[provider]
        inner = OpenAIChatCompletionsModel(model=model, openai_client=self.client(provider))
        policy = RetryPolicy(max_attempts=conf.max_attempts, max_backoff_s=conf.max_backoff_s)
        return RetryingModel(inner, provider, policy)

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients.clear()


def function_tool(spec: ToolSpec) -> FunctionTool:
    """An SDK tool around a plain one: arguments validated by pydantic, failures returned to
    the model as text (it can correct itself), the user's `ToolDeps` from the run context."""

    async def invoke(ctx: ToolContext[ToolDeps], raw: str) -> str:
        try:
            args = spec.args.model_validate_json(raw or "{}")
        except ValidationError as exc:
            return f"error: invalid arguments for {spec.name}: {exc.errors(include_url=False)}"
        try:
            return await spec.run(ctx.context, args)
        except ToolFailure as exc:
            return f"error: {exc}"

    return FunctionTool(
        name=spec.name,
        description=spec.description,
        params_json_schema=spec.args.model_json_schema(),
        on_invoke_tool=invoke,
        strict_json_schema=False,
    )


def _last_user_text(data: str | list[TResponseInputItem]) -> str:
    if isinstance(data, str):
        return data
    for item in reversed(data):
        if isinstance(item, dict) and item.get("role") == "user":
            content = item.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(
                    str(part.get("text", "")) for part in content if isinstance(part, dict)
                )
    return ""


def input_guardrail(spec: GuardrailSpec) -> InputGuardrail[ToolDeps]:
    """Blocking (not parallel with the model): a tripped input costs no tokens."""

    async def check(
        _ctx: RunContextWrapper[ToolDeps], _agent: Agent[Any], data: str | list[TResponseInputItem]
    ) -> GuardrailFunctionOutput:
        reason = guardrails.check(spec, framing.unframe(_last_user_text(data)))
        return GuardrailFunctionOutput(output_info=reason, tripwire_triggered=reason is not None)

    return InputGuardrail(guardrail_function=check, name=spec.type, run_in_parallel=False)


class AgentFactory:
    """SDK `Agent`s by id, built once and shared by concurrent runs (never mutated)."""

    def __init__(
        self,
        registry: Registry,
        settings: AgentSettings,
        tools: ToolRegistry,
        models: ModelSource,
    ) -> None:
        self.registry = registry
        self.settings = settings
        self.tools = tools
        self.models = models
        self._agents: dict[str, Agent[ToolDeps]] = {}
        self._tools = {spec.name: function_tool(spec) for spec in tools}

    def resolve(self, spec: AgentSpec) -> Resolved:
        provider = spec.provider or self.settings.default_provider
        conf = self.settings.all_providers()[provider]
        return Resolved(provider=provider, model=spec.model or conf.model)

    def model_settings(self, spec: AgentSpec) -> ModelSettings:
        style = self.settings.verbosity[spec.verbosity]
        knobs: ModelKnobs = spec.model_settings.over(style.settings)
        if self.resolve(spec).provider == LOCAL_PROVIDER:
            cap = self.settings.local_llm.max_tokens_cap
            knobs = knobs.model_copy(update={"max_tokens": min(knobs.max_tokens or cap, cap)})
        return ModelSettings(**knobs.model_dump(exclude_none=True), include_usage=True)

    def instructions(self, spec: AgentSpec) -> str:
        """The system prompt: the rule that the delimited dictation is data (`framing`), then
        the agent's own instructions (the verbosity hint follows the input: `user_message`)."""
        return framing.system_prompt(spec)

    def user_message(self, spec: AgentSpec, template: str | None, text: str, original: str) -> str:
        """What the model gets as the user's turn (`framing.user_message`)."""
        hint = self.settings.verbosity[spec.verbosity].hint
        return framing.user_message(spec, template, text, original, hint)

    def unavailable(self, agent_id: str) -> str | None:
        """Why the agent (or an agent it hands off to) cannot run now, else None. For an agent
        that calls tools the reason says so: the local model cannot call them (the registry
        refuses tools on providers without `supports_tools`), so a key is its only way."""
        missing_key = getattr(self.models, "missing_key", None)
        todo, seen = [agent_id], set()
        while todo:
            current = todo.pop()
            if current in seen:
                continue
            seen.add(current)
            spec = self.registry.agents[current]
            provider = self.resolve(spec).provider
            if callable(missing_key) and missing_key(provider):
                problem = (
                    f"provider '{provider}' (used by '{current}') has no API key configured "
                    f"(set {key_variables(self.settings, provider)})"
                )
                local = self.settings.all_providers()[LOCAL_PROVIDER]
                if (spec.tools or spec.delegate_to) and not local.supports_tools:
                    problem += (
                        f"; '{current}' calls tools (handoffs are tool calls too), which the "
                        "local model cannot, so it cannot run offline"
                    )
                return problem
            todo.extend(spec.delegate_to)
        return None

    def agent(self, agent_id: str) -> Agent[ToolDeps]:
        if agent_id not in self._agents:
            spec = self.registry.agents[agent_id]
            where = self.resolve(spec)
            # Handoff targets first: the registry guarantees there is no cycle.
            handoffs: list[Agent[Any] | Handoff[ToolDeps, Any]] = [
                self.agent(t) for t in spec.delegate_to
            ]
            self._agents[agent_id] = Agent[ToolDeps](
                name=spec.id,
                handoff_description=spec.description or spec.display_name,
                instructions=self.instructions(spec),
                model=self.models(where.provider, where.model),
                model_settings=self.model_settings(spec),
                tools=[self._tools[name] for name in spec.tools],
                handoffs=handoffs,
                input_guardrails=[input_guardrail(g) for g in spec.guardrails],
            )
        return self._agents[agent_id]
