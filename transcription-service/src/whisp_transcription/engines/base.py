"""The engine interface every transcription backend implements.

The worker hands an engine a `Clip` (the original bytes *and* 16 kHz mono samples, so
a remote API can receive the original file while a local model reads samples) and
gets back a `Transcription`. Engines raise the service's errors (`whisp_transcription.errors`,
each with a stable code); anything else is treated as a retryable internal error by the bus.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, Field

from whisp_shared.events import Segment

SAMPLE_RATE = 16_000


@dataclass(frozen=True)
class Clip:
    samples: npt.NDArray[np.float32]
    """Mono float32 at 16 kHz, in [-1, 1]."""
    original: bytes
    content_type: str
    filename: str = "audio"

    @property
    def duration_s(self) -> float:
        return len(self.samples) / SAMPLE_RATE


class TranscribeOptions(BaseModel):
    language: str | None = None
    """ISO code, or None to auto-detect (multilingual models only)."""
    prompt: str | None = None
    vocabulary: list[str] = Field(default_factory=list)
    """The recording owner's words; the engine makes them its prompt (`vocabulary.py`)."""
    word_timestamps: bool = False
    temperature: float = Field(default=0.0, ge=0.0, le=1.0)


class Transcription(BaseModel):
    text: str
    language: str | None = None
    segments: list[Segment] = Field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        return not self.text.strip()


class Engine(Protocol):
    name: str
    """`faster-whisper`, `openai`, …: reported on every transcript."""

    @property
    def model_name(self) -> str: ...

    @property
    def loaded(self) -> bool: ...

    def load(self) -> None:
        """Blocking; the worker runs it in a thread at start (readiness waits for it)."""

    def unload(self) -> None:
        """Free the model's memory; the next `transcribe` loads it again."""

    async def transcribe(self, clip: Clip, options: TranscribeOptions) -> Transcription: ...
