"""The bus consumer: RecordingCompleted in, TranscriptReady (or TranscriptionFailed) out.

Acks, redelivery, idempotency by `recording_id` and the dead-letter path are the bus's
(`whisp_shared.bus`); the handler here only returns the transcript or raises one of
`whisp_transcription.errors`, whose `retryable` flag the bus acts on. Blocking work
(decoding, the model) runs on the model thread (`ModelThread`) so the event loop keeps
heartbeating the entry.

Two lanes: the transcribers read the priority stream (what a person waits for) and the
bulk stream (long uploads) as two consumers whose handlers share one `Lanes` — the
process's slots, a clip first, and `clip_slots` of them never given to an upload.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager

from whisp_shared.audio import decode_audio
from whisp_shared.bus import Consumer
from whisp_shared.dictation import Replacement, apply_replacements
from whisp_shared.events import (
    Event,
    FailureFields,
    LiveRecordingStarted,
    RecordingCompleted,
    TranscriptionFailed,
    TranscriptReady,
)
from whisp_shared.lanes import Lane, Lanes
from whisp_shared.logs import get_logger
from whisp_shared.streams import PRIORITY_RECORDINGS, RECORDINGS, TRANSCRIBERS_GROUP, TRANSCRIPTS
from whisp_transcription import metrics
from whisp_transcription.engines.base import Clip, Engine, TranscribeOptions, Transcription
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


class ModelUse:
    """Work in flight on the model, and when the last of it ended: recordings and live
    recordings alike, so an idle unload never pulls the model from under either."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.last_used = time.monotonic()

    @contextmanager
    def busy(self) -> Iterator[None]:
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1
            self.last_used = time.monotonic()


class Transcriber:
    """One process's share of the `transcribers` group: fetch, decode, transcribe."""

    def __init__(
        self,
        engine: Engine,
        fetcher: AudioFetcher,
        settings: TranscriptionSettings,
        thread: ModelThread,
        use: ModelUse | None = None,
    ) -> None:
        self.engine = engine
        self.thread = thread
        self.fetcher = fetcher
        self.settings = settings
        self.use = use or ModelUse()
        self.lanes = Lanes(settings.slots, bulk_share=settings.max_concurrency / settings.slots)

    def consumers(self) -> list[Consumer]:
        """What this process reads (both lanes), writes and answers on failure."""
        # One clip more in hand than slots, so the next clip is already waiting when one
        # ends and takes the slot before an upload in hand does (`max_streak` in a row).
        lanes: dict[str, tuple[Lane, int]] = {
            PRIORITY_RECORDINGS: ("priority", self.settings.slots + 1),
            RECORDINGS: ("bulk", self.settings.max_concurrency),
        }
        return [
            Consumer(
                stream=stream,
                group=TRANSCRIBERS_GROUP,
                output_stream=TRANSCRIPTS,
                handler=self.lanes.wrap(lane, self.handle),
                on_failure=failure_event,
                accepts=lambda event: isinstance(event, RecordingCompleted),
                max_workers=slots,
                read_count=slots,  # take no more than it can (nearly) start now
            )
            for stream, (lane, slots) in lanes.items()
        ]

    async def handle(self, event: Event) -> TranscriptReady:
        assert isinstance(event, RecordingCompleted)  # `accepts` let nothing else through
        started = time.perf_counter()
        with self.use.busy():
            raw = await self.fetcher.fetch(event.audio_uri)
            samples = await self.thread.run(
                decode_audio, raw, max_seconds=self.settings.max_audio_s
            )
            media = event.content_type.split(";")[0].strip()
            clip = Clip(samples, raw, media, f"audio.{EXTENSIONS.get(media, 'wav')}")
            result = await self.engine.transcribe(clip, transcribe_options(event))
        elapsed = time.perf_counter() - started
        return transcript_ready(event, result, self.engine, clip.duration_s, elapsed)

    async def unload_when_idle(self, idle_s: float) -> None:
        """Free the model after `idle_s` without work; the next clip loads it again."""
        while True:
            await asyncio.sleep(min(idle_s / 4, 5.0))
            idle = time.monotonic() - self.use.last_used
            if self.engine.loaded and not self.use.in_flight and idle >= idle_s:
                await self.thread.run(self.engine.unload)
                metrics.MODEL_LOADED.set(0)
                log.info("model unloaded after idle", idle_s=round(idle, 1))


def transcribe_options(event: RecordingCompleted | LiveRecordingStarted) -> TranscribeOptions:
    """What the recording's caller asked of the recogniser."""
    return TranscribeOptions(
        language=event.language,
        prompt=event.prompt,
        vocabulary=event.vocabulary,
        word_timestamps=event.word_timestamps,
    )


def replaced(result: Transcription, replacements: list[Replacement]) -> tuple[Transcription, str]:
    """The result as the owner wants it written, and the recogniser's own text.

    Segments get the replacements too, one by one: a subtitles export shows the segments,
    and its reader wants "GitHub" and the names spelled as in the text. A cue is one block
    of lines, so a written line break becomes a space there (a blank line would end the
    cue), and a phrase split across two segments stays as heard in them. Word timings stay
    as recognised: they time what was said."""
    if not replacements:
        return result, result.text
    segments = []
    for seg in result.segments:
        written = " ".join(apply_replacements(seg.text, replacements).split())
        if written:  # a segment that said only "new paragraph" leaves no empty cue
            segments.append(seg.model_copy(update={"text": written}))
    text = apply_replacements(result.text, replacements)
    return result.model_copy(update={"text": text, "segments": segments}), result.text


def transcript_ready(
    event: RecordingCompleted | LiveRecordingStarted,
    result: Transcription,
    engine: Engine,
    duration_s: float,
    elapsed_s: float,
) -> TranscriptReady:
    """The transcript that answers a recording (uploaded or live): its identity and agent
    route, the engine's result with the owner's replacements (`raw_text`: the result as
    heard, when they changed it), and the time it took (counted and logged)."""
    rtf = elapsed_s / duration_s if duration_s else 0.0
    live = isinstance(event, LiveRecordingStarted)
    metrics.CLIPS.labels(engine.name, engine.model_name).inc()
    metrics.PROCESSING_SECONDS.observe(elapsed_s)
    metrics.REAL_TIME_FACTOR.observe(rtf)
    metrics.AUDIO_SECONDS.inc(duration_s)
    log.info(
        "transcribed",
        live=live,
        audio_s=round(duration_s, 2),
        seconds=round(elapsed_s, 3),
        rtf=round(rtf, 3),
        empty=result.is_empty,
    )
    result, raw = replaced(result, event.replacements)
    return TranscriptReady(
        **event.follow_up(),
        **event.route().model_dump(),
        text=result.text,
        raw_text=raw if raw != result.text else None,
        is_empty=result.is_empty,
        language=result.language,
        segments=result.segments,
        engine=engine.name,
        model=engine.model_name,
        audio_duration_s=round(duration_s, 3),
        processing_s=round(elapsed_s, 4),
        real_time_factor=round(rtf, 4),
        live=live,
    )


def failure_event(event: Event, failure: FailureFields) -> TranscriptionFailed:
    metrics.FAILURES.labels(failure.code).inc()
    return TranscriptionFailed(**event.follow_up(), **failure.model_dump())
