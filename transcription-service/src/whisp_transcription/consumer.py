"""The bus consumer: RecordingCompleted in, TranscriptReady (or TranscriptionFailed) out.

Acks, redelivery, idempotency by `recording_id` and the dead-letter path are the bus's
(`whisp_shared.bus`); the handler here only returns the transcript or raises one of
`whisp_transcription.errors`, whose `retryable` flag the bus acts on. Blocking work
(decoding, the model) runs on the model thread (`ModelThread`) so the event loop keeps
heartbeating the entry; a semaphore bounds clips in flight per process.
"""

from __future__ import annotations

import asyncio
import time

from whisp_shared.audio import decode_audio
from whisp_shared.bus import Consumer
from whisp_shared.events import (
    Event,
    FailureFields,
    RecordingCompleted,
    TranscriptionFailed,
    TranscriptReady,
)
from whisp_shared.logs import get_logger
from whisp_shared.streams import RECORDINGS, TRANSCRIBERS_GROUP, TRANSCRIPTS
from whisp_transcription import metrics
from whisp_transcription.engines.base import Clip, Engine, TranscribeOptions
from whisp_transcription.fetch import AudioFetcher
from whisp_transcription.model_thread import ModelThread
from whisp_transcription.settings import TranscriptionSettings

log = get_logger(__name__)

EXTENSIONS = {
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/flac": "flac",
    "audio/mpeg": "mp3",
    "audio/ogg": "ogg",
    "audio/webm": "webm",
    "audio/mp4": "m4a",
}


class Transcriber:
    """One process's share of the `transcribers` group: fetch, decode, transcribe."""

    def __init__(
        self,
        engine: Engine,
        fetcher: AudioFetcher,
        settings: TranscriptionSettings,
        thread: ModelThread,
    ) -> None:
        self.engine = engine
        self.thread = thread
        self.fetcher = fetcher
        self.settings = settings
        self._slots = asyncio.Semaphore(settings.max_concurrency)
        self._in_flight = 0
        self._last_used = time.monotonic()

    def consumer(self) -> Consumer:
        """What this process reads, writes and answers on failure."""
        return Consumer(
            stream=RECORDINGS,
            group=TRANSCRIBERS_GROUP,
            output_stream=TRANSCRIPTS,
            handler=self.handle,
            on_failure=failure_event,
            accepts=lambda event: isinstance(event, RecordingCompleted),
            max_workers=self.settings.max_concurrency,
        )

    async def handle(self, event: Event) -> TranscriptReady:
        assert isinstance(event, RecordingCompleted)  # `accepts` let nothing else through
        started = time.perf_counter()
        async with self._slots:
            self._in_flight += 1
            try:
                raw = await self.fetcher.fetch(event.audio_uri)
                samples = await self.thread.run(
                    decode_audio, raw, max_seconds=self.settings.max_audio_s
                )
                media = event.content_type.split(";")[0].strip()
                clip = Clip(samples, raw, media, f"audio.{EXTENSIONS.get(media, 'wav')}")
                result = await self.engine.transcribe(
                    clip,
                    TranscribeOptions(
                        language=event.language,
                        prompt=event.prompt,
                        word_timestamps=event.word_timestamps,
                    ),
                )
            finally:
                self._in_flight -= 1
                self._last_used = time.monotonic()
        elapsed = time.perf_counter() - started
        duration = clip.duration_s
        rtf = elapsed / duration if duration else 0.0
        metrics.CLIPS.labels(self.engine.name, self.engine.model_name).inc()
        metrics.PROCESSING_SECONDS.observe(elapsed)
        metrics.REAL_TIME_FACTOR.observe(rtf)
        metrics.AUDIO_SECONDS.inc(duration)
        log.info(
            "transcribed",
            audio_s=round(duration, 2),
            seconds=round(elapsed, 3),
            rtf=round(rtf, 3),
            empty=result.is_empty,
        )
        return TranscriptReady(
            **event.follow_up(),
            **event.route().model_dump(),
            text=result.text,
            is_empty=result.is_empty,
            language=result.language,
            segments=result.segments,
            engine=self.engine.name,
            model=self.engine.model_name,
            audio_duration_s=round(duration, 3),
            processing_s=round(elapsed, 4),
            real_time_factor=round(rtf, 4),
        )

    async def unload_when_idle(self, idle_s: float) -> None:
        """Free the model after `idle_s` without work; the next clip loads it again."""
        while True:
            await asyncio.sleep(min(idle_s / 4, 5.0))
            idle = time.monotonic() - self._last_used
            if self.engine.loaded and not self._in_flight and idle >= idle_s:
                await self.thread.run(self.engine.unload)
                metrics.MODEL_LOADED.set(0)
                log.info("model unloaded after idle", idle_s=round(idle, 1))


def failure_event(event: Event, failure: FailureFields) -> TranscriptionFailed:
    metrics.FAILURES.labels(failure.code).inc()
    return TranscriptionFailed(**event.follow_up(), **failure.model_dump())
