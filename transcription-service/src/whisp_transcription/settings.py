"""The `transcription:` section of config.yaml."""

from typing import ClassVar

from pydantic import Field

from whisp_shared.service import ServiceSettings


class TranscriptionSettings(ServiceSettings):
    section: ClassVar[str] = "transcription"

    port: int = Field(default=8010, ge=0, le=65535)
    max_concurrency: int = Field(default=1, ge=1)
    """Clips transcribed at once by one process; scale out with processes instead."""
