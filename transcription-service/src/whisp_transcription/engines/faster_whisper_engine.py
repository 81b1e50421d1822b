"""faster-whisper (CTranslate2) on this machine's CPU: the offline default engine.

Clips whose speech fits a short window (push-to-talk: most of them) are decoded on a
window the size of the speech (`short_window`); longer ones, and any short pass a guard
does not trust, go through faster-whisper's own chunked 30-s `transcribe()`.

Whisper invents words on silence and noise, so four guards keep it honest on both paths: a
loudness floor checked before the model runs, Silero VAD (`vad_filter`), the
`no_speech_prob`/`avg_logprob` rule, and `condition_on_previous_text=False` so one
hallucination cannot seed the next.

Everything that touches the model runs on the worker's model thread (`ModelThread`):
CTranslate2 and numpy buffers allocated from many threads spread over glibc arenas and
kept the worker ~50 MB above its memory target.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from whisp_shared.audio import rms_dbfs
from whisp_shared.events import Segment, Word
from whisp_shared.logs import get_logger
from whisp_transcription import metrics
from whisp_transcription.engines.base import Clip, TranscribeOptions, Transcription
from whisp_transcription.engines.short_window import ShortResult, ShortWindowDecoder
from whisp_transcription.engines.speech import Speech
from whisp_transcription.model_files import resolve_model
from whisp_transcription.model_thread import ModelThread
from whisp_transcription.settings import FasterWhisperSettings
from whisp_transcription.vocabulary import recogniser_prompt

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

log = get_logger(__name__)


class FasterWhisperEngine:
    name = "faster-whisper"

    def __init__(self, settings: FasterWhisperSettings, thread: ModelThread | None = None) -> None:
        self.settings = settings
        self.thread = thread or ModelThread(settings.num_workers)
        self._model: WhisperModel | None = None
        self._short: ShortWindowDecoder | None = None
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
            self._short = ShortWindowDecoder(self._model, s)

    def unload(self) -> None:
        with self._lock:
            self._model = None
            self._short = None

    @property
    def multilingual(self) -> bool:
        return bool(self._model and self._model.model.is_multilingual)

    async def transcribe(self, clip: Clip, options: TranscribeOptions) -> Transcription:
        return await self.thread.run(self.transcribe_sync, clip, options)

    def transcribe_sync(self, clip: Clip, options: TranscribeOptions) -> Transcription:
        """Blocking transcription; the async wrapper keeps the event loop (and heartbeats) free."""
        self.load()
        assert self._model is not None
        assert self._short is not None
        s = self.settings
        language = options.language or s.language
        if not self._model.model.is_multilingual:
            language = "en"
        if rms_dbfs(clip.samples) < s.min_rms_dbfs:
            metrics.DECODE_PATH.labels("none", "quiet").inc()
            return Transcription(text="", language=language)
        speech = Speech.find(clip.samples, s.vad_filter)
        if not speech.chunks:
            metrics.DECODE_PATH.labels("none", "no_speech").inc()
            return Transcription(text="", language=language)
        prompt = self._prompt(options, language)
        reason = self._full_path_reason(speech, options)
        if reason is None:
            outcome = self._short.decode(
                speech.samples, language, prompt, options.word_timestamps or s.word_timestamps
            )
            if isinstance(outcome, ShortResult):
                metrics.DECODE_PATH.labels("short", "ok").inc()
                return Transcription(
                    text=outcome.text,
                    language=outcome.language,
                    segments=[speech.restore(seg) for seg in outcome.segments],
                )
            log.info(
                "short window not trusted; full path", guard=outcome.reason, detail=outcome.detail
            )
            reason = f"fallback_{outcome.reason}"
        metrics.DECODE_PATH.labels("full", reason).inc()
        return self._transcribe_full(clip, options, language, prompt)

    def peek_sync(self, samples: npt.NDArray[np.float32], options: TranscribeOptions) -> str | None:
        """What the audio so far seems to say, for a partial: one greedy short pass and never
        the full path (None when a guard does not trust it: the next partial may)."""
        self.load()
        assert self._short is not None
        speech = Speech.find(samples, self.settings.vad_filter)
        if not speech.chunks or rms_dbfs(samples) < self.settings.min_rms_dbfs:
            return ""
        if speech.duration_s > self.settings.short_window.max_s:
            return None
        language = options.language or self.settings.language
        outcome = self._short.decode(
            speech.samples, language, self._prompt(options, language), words=False, greedy=True
        )
        return outcome.text if isinstance(outcome, ShortResult) else None

    def _prompt(self, options: TranscribeOptions, language: str | None) -> str | None:
        """The owner's vocabulary, then the caller's prompt (or the configured one), in the
        form and the token budget `vocabulary.py` measured."""
        model = self._model
        assert model is not None
        if not model.model.is_multilingual:
            language = "en"

        def count(text: str) -> int:
            return len(model.hf_tokenizer.encode(" " + text, add_special_tokens=False).ids)

        return recogniser_prompt(
            options.prompt or self.settings.initial_prompt, options.vocabulary, language, count
        )

    def _full_path_reason(self, speech: Speech, options: TranscribeOptions) -> str | None:
        """Why this clip cannot take the short window (None: it can)."""
        window = self.settings.short_window
        if not window.enabled:
            return "disabled"
        if speech.duration_s > window.max_s:
            return "long"
        if options.temperature:
            return "temperature"
        return None

    def _transcribe_full(
        self, clip: Clip, options: TranscribeOptions, language: str | None, prompt: str | None
    ) -> Transcription:
        model = self._model
        assert model is not None
        s = self.settings
        words = options.word_timestamps or s.word_timestamps
        segments, info = model.transcribe(
            clip.samples,
            language=language,
            beam_size=s.beam_size,
            temperature=options.temperature if options.temperature else [0.0, 0.2, 0.4, 0.6],
            initial_prompt=prompt,
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
