"""The `agents:` section of config.yaml."""

from typing import ClassVar

from pydantic import Field, SecretStr

from whisp_shared.service import ServiceSettings


class AgentSettings(ServiceSettings):
    section: ClassVar[str] = "agents"

    port: int = Field(default=8003, ge=0, le=65535)
    openai_api_key: SecretStr | None = None
    """From WHISP_AGENTS__OPENAI_API_KEY only; never from the file."""
