"""The `audio:` section of config.yaml."""

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, SecretStr

from whisp_shared.config import ServiceSettings, service_token_field
from whisp_shared.netutil import is_loopback


class AudioSettings(ServiceSettings):
    section: ClassVar[str] = "audio"

    port: int = Field(default=8001, ge=0, le=65535)
    data_dir: Path = Path("data/audio")
    """Where recordings are kept: the original as received and a 16 kHz mono WAV."""
    public_url: str | None = None
    """Base URL workers use for `GET /audio/{id}`; None: http://<host>:<port>."""
    audio_uri: Literal["http", "file"] = "http"
    """`file` hands workers a file:// URI into `data_dir` (a folder they share)."""
    service_token: SecretStr | None = service_token_field("audio")
    """Bearer token other services must send; required when listening beyond loopback."""
    max_upload_bytes: int = Field(default=50 * 1024 * 1024, gt=0)
    priority_max_s: float = Field(default=60.0, ge=0)
    """Recordings up to this long go on the priority lane (`streams.PRIORITY_RECORDINGS`):
    someone holding a key waits for them. Device recordings always do; 0 turns it off."""
    max_duration_s: float = Field(default=600.0, gt=0)
    """Uploads longer than this are refused; device and live recordings stop here by
    themselves (a live recording is committed at this length)."""
    live_max_chunk_bytes: int = Field(default=256 * 1024, ge=2)
    """Most bytes one `POST /live/{id}/audio` may carry (~5 s at 24 kHz): split larger."""
    disconnect_grace_s: float = Field(default=10.0, ge=0)
    """A device recording whose client stopped polling/streaming is cancelled after this."""
    retention_days: float | None = Field(default=30.0, gt=0)
    retention_max_bytes: int | None = Field(default=5 * 1024**3, gt=0)
    """Oldest recordings are deleted first when the folder grows past this."""
    retention_interval_s: float = Field(default=3600.0, gt=0)
    """How often the retention policy runs (also once at start)."""
    default_device: str | int | None = None
    """sounddevice input device for device recordings (None: the system default)."""

    def check_exposure(self) -> None:
        """Refuse to serve audio beyond loopback without a service token: with no token,
        anything that can reach the port could read every recording. (On loopback, callers
        are this machine's own processes.)"""
        if not is_loopback(self.host) and self.service_token is None:
            raise RuntimeError(
                f"audio.host is {self.host} (beyond loopback) but no service token is set: "
                "set WHISP_AUDIO__SERVICE_TOKEN"
            )
