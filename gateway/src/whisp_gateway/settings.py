"""The `web:` section of config.yaml (the gateway serves the web UI and the REST API)."""

from pathlib import Path
from typing import Annotated, ClassVar

from pydantic import AliasChoices, Field, SecretStr

from whisp_gateway.wyoming.settings import WyomingSettings
from whisp_shared.config import ConfigSection, ServiceSettings, service_token_field

Seconds = Annotated[float, Field(ge=0)]


class QuotaSettings(ConfigSection):
    """`web.quota`: how many seconds of audio each user may send per UTC day (`quota.py`)."""

    audio_seconds_per_day: Seconds | None = None
    """Everyone's quota; None: unlimited (the default, so a desk install never meets it)."""
    per_user: dict[str, Seconds | None] = Field(default_factory=dict)
    """By user name, overriding `audio_seconds_per_day`; None: unlimited for that user
    (a service account, an admin)."""

    def limit_for(self, name: str) -> float | None:
        """The user's quota in seconds per day, or None when unlimited."""
        if name in self.per_user:
            return self.per_user[name]
        return self.audio_seconds_per_day


class GatewaySettings(ServiceSettings):
    section: ClassVar[str] = "web"

    port: int = Field(default=8000, ge=0, le=65535)
    session_secret: SecretStr = SecretStr("change-me")
    """Signs browser session cookies; WHISP_WEB__SESSION_SECRET, refused as a placeholder in
    production."""
    database_url: str = Field(
        default="sqlite+aiosqlite:///data/gateway.db",
        validation_alias=AliasChoices("database_url", "DATABASE_URL", "WHISP_WEB__DATABASE_URL"),
    )
    """SQLite (WAL) by default; `postgresql://…` (DATABASE_URL) uses PostgreSQL."""
    audio_service_url: str = "http://127.0.0.1:8001"
    agent_service_url: str = "http://127.0.0.1:8003"
    service_token: SecretStr | None = service_token_field("web")
    """Bearer token the gateway presents to the audio and agent services, and accepts from
    them (with `X-Whisp-User`) when they act for a user."""
    cors_origins: list[str] = Field(default_factory=list)
    rate_limit: str = "100/hour"
    """Uploads and agent runs per user: `N/second|minute|hour|day`."""
    rate_burst: int = Field(default=10, ge=1)
    """Requests a user may make at once before the steady rate applies."""
    quota: QuotaSettings = Field(default_factory=QuotaSettings)
    """Audio seconds per user per UTC day (`WHISP_WEB__QUOTA__AUDIO_SECONDS_PER_DAY`)."""
    devices_enabled: bool | None = None
    """Who may drive a recorder on the audio service's machine (`/api/devices`). Its
    microphone hears the room that machine stands in, not the user's, so a shared gateway
    must not hand it to every account by default. None (the default): only in single-user
    mode (loopback, no accounts), the desk install where that machine is the user's own;
    true: every signed-in user (a microphone meant for them: a kiosk, a meeting room);
    false: never. Refused: 403 `forbidden`."""
    max_upload_bytes: int = Field(default=50 * 1024 * 1024, gt=0)
    wait_timeout_s: float = Field(default=60.0, gt=0)
    """`?wait=true` and the OpenAI endpoint give up after this long (504)."""
    retention_interval_s: float = Field(default=3600.0, gt=0)
    """How often the retention sweep deletes what users' own retention settings let go
    (`audio_retention_days`, `transcript_retention_days`); one replica sweeps each time."""
    cookie_secure: bool = False
    """Set on HTTPS deployments so the session cookie never travels in clear text."""
    static_dir: Path | None = None
    """Serve the web UI from here instead of the packaged copy."""
    wyoming: WyomingSettings = Field(default_factory=WyomingSettings)
    """Home Assistant's Wyoming speech-to-text server (port 10300); `WHISP_WEB__WYOMING__…`."""
