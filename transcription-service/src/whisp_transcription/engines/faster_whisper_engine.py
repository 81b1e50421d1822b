"""faster-whisper (CTranslate2) on this machine's CPU: the offline default engine.

Whisper invents words on silence and noise, so four guards keep it honest: a loudness
floor checked before the model runs, Silero VAD (`vad_filter`), per-segment
`no_speech_prob`/`avg_logprob` thresholds, and `condition_on_previous_text=False` so one
hallucination cannot seed the next.
"""

from __future__ import annotations

import asyncio
import os
import threading
from typing import TYPE_CHECKING, Any

from whisp_shared.audio import rms_dbfs
from whisp_shared.events import Segment, Word
from whisp_transcription.engines.base import Clip, TranscribeOptions, Transcription
from whisp_transcription.model_files import resolve_model
from whisp_transcription.settings import FasterWhisperSettings

if TYPE_CHECKING:
    from faster_whisper import WhisperModel


class FasterWhisperEngine:
    name = "faster-whisper"

    def __init__(self, settings: FasterWhisperSettings) -> None:
        self.settings = settings
        self._model: WhisperModel | None = None
        self._lock = threading.Lock()

    @property
    def model_name(self) -> str:
        return self.settings.model

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def load(self) -> None:
        with self._lock:
            if self._model is not None:
                return
            if not self.settings.allow_download:
                os.environ["HF_HUB_OFFLINE"] = "1"  # belt and braces: no hub calls at all
            from faster_whisper import WhisperModel  # noqa: PLC0415 (heavy; only when loading)

            s = self.settings
            self._model = WhisperModel(
                resolve_model(s.model, s.model_cache_dir, s.allow_download),
                device=s.device,
                compute_type=s.compute_type,
                cpu_threads=s.cpu_threads,
                num_workers=s.num_workers,
                local_files_only=not s.allow_download,
            )

    def unload(self) -> None:
        with self._lock:
            self._model = None

    @property
    def multilingual(self) -> bool:
        return bool(self._model and self._model.model.is_multilingual)

    async def transcribe(self, clip: Clip, options: TranscribeOptions) -> Transcription:
        return await asyncio.to_thread(self.transcribe_sync, clip, options)

    def transcribe_sync(self, clip: Clip, options: TranscribeOptions) -> Transcription:
        """Blocking transcription; the async wrapper keeps the event loop (and heartbeats) free."""
        self.load()
        model = self._model
        assert model is not None
        s = self.settings
        language = options.language or s.language
        if not model.model.is_multilingual:
            language = "en"
        if rms_dbfs(clip.samples) < s.min_rms_dbfs:
            return Transcription(text="", language=language)
        words = options.word_timestamps or s.word_timestamps
        segments, info = model.transcribe(
            clip.samples,
            language=language,
            beam_size=s.beam_size,
            temperature=options.temperature if options.temperature else [0.0, 0.2, 0.4, 0.6],
            initial_prompt=options.prompt or s.initial_prompt,
            vad_filter=s.vad_filter,
            word_timestamps=words,
            condition_on_previous_text=False,
            no_speech_threshold=s.no_speech_threshold,
            log_prob_threshold=s.log_prob_threshold,
        )
        kept = [seg for seg in segments if not self._is_hallucination(seg)]
        return Transcription(
            text=" ".join(seg.text.strip() for seg in kept).strip(),
            language=info.language,
            segments=[_segment(seg, words) for seg in kept],
        )

    def _is_hallucination(self, seg: Any) -> bool:
        """Whisper's own rule, applied per segment: likely silence *and* low confidence."""
        return (
            bool(
                seg.no_speech_prob > self.settings.no_speech_threshold
                and seg.avg_logprob < self.settings.log_prob_threshold
            )
            or not seg.text.strip()
        )


def _segment(seg: Any, with_words: bool) -> Segment:
    return Segment(
        start=round(seg.start, 3),
        end=round(seg.end, 3),
        text=seg.text.strip(),
        words=[
            Word(
                start=round(w.start, 3),
                end=round(w.end, 3),
                word=w.word.strip(),
                probability=round(w.probability, 4),
            )
            for w in seg.words or []
        ]
        if with_words
        else None,
    )
