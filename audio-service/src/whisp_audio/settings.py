"""The `audio:` section of config.yaml."""

from pathlib import Path
from typing import ClassVar

from pydantic import Field

from whisp_shared.service import ServiceSettings


class AudioSettings(ServiceSettings):
    section: ClassVar[str] = "audio"

    port: int = Field(default=8001, ge=0, le=65535)
    data_dir: Path = Path("data/audio")
    """Where recordings are kept (originals and 16 kHz mono copies)."""
