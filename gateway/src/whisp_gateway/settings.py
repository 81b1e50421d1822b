"""The `web:` section of config.yaml (the gateway serves the web UI and the REST API)."""

from typing import ClassVar

from pydantic import Field, SecretStr

from whisp_shared.service import ServiceSettings


class GatewaySettings(ServiceSettings):
    section: ClassVar[str] = "web"

    port: int = Field(default=8000, ge=0, le=65535)
    session_secret: SecretStr = SecretStr("change-me")
    """Signs browser sessions; WHISP_WEB__SESSION_SECRET, refused as a placeholder in production."""
