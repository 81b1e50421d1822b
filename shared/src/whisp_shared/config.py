"""Settings: one `config.yaml`, a section per service, `WHISP_<SECTION>__…` overrides.

Each service builds only its own section class, so a typo in another section
cannot stop it. Secrets come from the environment only: a secret written into
the YAML is refused, and outside local mode a placeholder secret is refused too.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from whisp_shared.streams import GROUP_STREAMS

CONFIG_ENV = "WHISP_CONFIG"
DEFAULT_CONFIG = Path("config.yaml")
PLACEHOLDER_SECRETS = frozenset({"", "change-me", "changeme", "secret", "password", "placeholder"})

Mode = Literal["local", "production"]


class ConfigError(ValueError):
    """The configuration cannot be used; the message says which key and why."""


class ConfigSection(BaseModel):
    """A table nested in a section (`transcription.faster_whisper`, `web.quota`, ...):
    unknown keys are refused like the section's own, so a misspelt option fails the start
    with its path instead of silently keeping the default."""

    model_config = ConfigDict(extra="forbid")


def config_path() -> Path:
    return Path(os.environ.get(CONFIG_ENV, DEFAULT_CONFIG))


class _SectionYamlSource(YamlConfigSettingsSource):
    """The service's own section, plus the top-level `mode`; secrets in YAML are an error."""

    def __init__(self, settings_cls: type[SectionSettings]) -> None:
        path = config_path()
        super().__init__(settings_cls, yaml_file=path if path.is_file() else None)
        whole = self.yaml_data
        if not isinstance(whole, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of sections")
        section = whole.get(settings_cls.section) or {}
        if not isinstance(section, dict):
            raise ConfigError(f"{path}: section '{settings_cls.section}' must be a mapping")
        leaked = sorted(k for k in section if k in settings_cls.secret_fields())
        if leaked:
            raise ConfigError(
                f"{path}: {settings_cls.section}.{', '.join(leaked)} is a secret; "
                f"set it in the environment (WHISP_{settings_cls.section.upper()}__…), "
                "not in the file"
            )
        data: dict[str, Any] = dict(section)
        if "mode" in whole:
            data["mode"] = whole["mode"]
        self.init_kwargs = data


SHARED_SERVICE_TOKEN_ENV = "WHISP_SERVICE_TOKEN"  # noqa: S105 (an env var name)


def service_token_field(section: str, name: str = "service_token", doc: str = "") -> Any:
    """A secret bearer token services present to each other: its own env var, or the one
    `WHISP_SERVICE_TOKEN` that a deployment sets for every service at once."""
    return Field(
        default=None,
        description=doc,
        validation_alias=AliasChoices(
            name, f"WHISP_{section.upper()}__{name.upper()}", SHARED_SERVICE_TOKEN_ENV
        ),
    )


class SectionSettings(BaseSettings):
    """Base for a service's settings: subclasses name their `section`."""

    section: ClassVar[str]

    mode: Mode = Field(default="local", validation_alias=AliasChoices("mode", "WHISP_MODE"))
    """`local` allows placeholder secrets and loopback-only conveniences; `production` does not."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        section = cls.__dict__.get("section")
        if section:
            cls.model_config = SettingsConfigDict(
                env_prefix=f"WHISP_{section.upper()}__",
                env_nested_delimiter="__",
                extra="forbid",
                populate_by_name=True,
            )

    @classmethod
    def secret_fields(cls) -> set[str]:
        return {
            name
            for name, field in cls.model_fields.items()
            if field.annotation in (SecretStr, SecretStr | None)
        }

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        assert issubclass(settings_cls, SectionSettings)
        return (init_settings, env_settings, _SectionYamlSource(settings_cls))

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> Self:
        if self.mode == "local":
            return self
        for name in self.secret_fields():
            value = getattr(self, name)
            if value is not None and value.get_secret_value().strip().lower() in (
                PLACEHOLDER_SECRETS
            ):
                raise ConfigError(
                    f"{self.section}.{name} is a placeholder; set a real secret in "
                    f"WHISP_{self.section.upper()}__{name.upper()} (mode is {self.mode})"
                )
        return self


class ServiceSettings(SectionSettings):
    """Listening address shared by every service section (framework-free, so a service's
    settings module stays importable without the web stack)."""

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    shutdown_timeout_s: int = Field(default=30, ge=0)
    """On SIGTERM, how long the server lets open requests finish (uvicorn's
    `timeout_graceful_shutdown`; SSE streams end at once) before its lifespan stops the bus,
    which gives work in flight `bus.graceful_timeout_s` more. A pod's
    terminationGracePeriodSeconds covers both (deploy/README.md, "Draining")."""


class BusSettings(SectionSettings):
    """How every service reaches Redis and treats stream entries."""

    section: ClassVar[str] = "bus"

    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        validation_alias=AliasChoices("redis_url", "REDIS_URL", "WHISP_BUS__REDIS_URL"),
    )
    """`REDIS_URL` wins over the file, as ops expect. `rediss://` for TLS,
    `redis+sentinel://s1:26379,s2:26379/<master>` for Sentinel (`whisp_shared.redis_client`)."""
    replicas_to_ack: int = Field(default=0, ge=0, le=16)
    """With replicas (Sentinel, a managed HA Redis): a publish returns once this many
    replicas hold it (WAIT), so accepted work survives a failover. 0: the master alone."""
    replica_ack_ms: int = Field(default=1_000, ge=1)
    """How long a publish waits for `replicas_to_ack` before it is accepted anyway (logged)."""
    claim_idle_ms: int = Field(default=30_000, ge=100)
    """A pending entry idle this long is taken over by a live peer (XAUTOCLAIM)."""
    max_deliveries: int = Field(default=3, ge=1)
    """After this many deliveries an entry is dead-lettered and its user told."""
    read_block_ms: int = Field(default=1_000, ge=10)
    """How long one read waits for new entries; also how often idle entries are reclaimed."""
    read_count: int = Field(default=100, ge=1, le=1_000)
    """Most entries a consumer takes in one read and has in hand at once (running or waiting
    for a worker), unless its `Consumer.read_count` says otherwise. Batches are what make the
    bus fast; every entry in hand is heartbeated, so none is stolen while it waits."""
    live_maxlen: int = Field(default=10_000, ge=100)
    """Approximate cap of the live-only stream: a few seconds of partials for a lagging reader."""
    stream_maxlen: int = Field(default=100_000, ge=1_000)
    """Approximate cap (XADD MAXLEN ~) of the streams no group reads: user events (the
    SSE replay window) and dead letters."""
    stream_hard_maxlen: int = Field(default=1_000_000, ge=1_000)
    """Last guard of Redis's memory for the streams groups read (`streams.GROUP_STREAMS`):
    those are trimmed by their slowest group instead (`bus_trim`), so this cuts only when a
    group is gone for good — and the trimmer warns before it does."""
    stream_retention_s: float = Field(default=24 * 3600, ge=0)
    """Finished entries are kept this long (for `whisp dlq`, debugging), then trimmed."""
    trim_interval_s: float = Field(default=60.0, gt=0)
    """How often each consuming process trims the streams it reads."""
    gone_consumer_idle_s: float = Field(default=3600.0, gt=0)
    """A group's consumer idle this long with nothing pending is a pod gone without a clean
    stop (killed, or its entries reclaimed by peers): the trimmer removes its name. A live
    consumer's every read resets its idle time (and would add the name back)."""
    done_ttl_s: int = Field(default=7 * 24 * 3600, ge=60)
    """How long a processed `recording_id` is remembered for idempotency."""
    graceful_timeout_s: float = Field(default=30.0, ge=0)
    """On SIGTERM, in-flight work gets this long to finish; the rest stays pending."""

    def maxlen_of(self, stream: str) -> int:
        """The XADD cap for `stream` (see `stream_maxlen`, `stream_hard_maxlen`)."""
        return self.stream_hard_maxlen if stream in GROUP_STREAMS else self.stream_maxlen


class LoggingSettings(SectionSettings):
    section: ClassVar[str] = "logging"

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    json_logs: bool = Field(default=True, validation_alias=AliasChoices("json_logs", "json"))
