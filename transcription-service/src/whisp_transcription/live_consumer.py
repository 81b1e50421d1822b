"""The live half of the `transcribers` group: `LiveRecordingStarted` in; partial text to the
user while the audio flows; at commit the `TranscriptReady` (at cancel, nothing).

The handler follows the recording's audio stream (`live_audio.live_audio_stream`) from its
first entry with XREAD BLOCK, a batch at a time, and feeds a `LiveDecoder`. After each
batch one model step runs: a speculative final when the speech has been followed by a
short silence, else a partial when enough new audio came; each new partial goes to the
user's open pages (`EventBus.publish_live`, never stored). When the model is busy, audio
waits in Redis and the next batch takes all of it, so a slow step never queues more work.
At the commit entry the final is decoded (usually the speculative one, already done) and
returned for the bus to publish, exactly once per recording.

Failures follow the bus's rules. A worker that dies mid-recording stops heartbeating its
entry; a peer reclaims it and replays the audio from the start: catching up costs one model
step. The last partial shown is kept beside the audio (`whisp:live-partial:<id>`): the peer
starts from its settled words (`LiveDecoder.resume`), and a partial's `sequence` is the
audio position it covers (milliseconds), so on the user's screen settled text still only
grows and sequences still count up across the handover.

No audio and no end for `live_idle_timeout_s` fails the recording (`live_audio_timeout`).
Only the faster-whisper engine can stream: with another engine every live recording fails
at once (`live_not_supported`), so the user hears why instead of waiting.

Model work runs on the worker's model thread (`ModelThread`), shared with uploaded clips;
the event loop stays free to heartbeat.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from whisp_shared.bus import Consumer, EventBus
from whisp_shared.codes import ErrorCode
from whisp_shared.errors import PermanentError
from whisp_shared.events import Event, LiveRecordingStarted, TranscriptReady
from whisp_shared.live_audio import LIVE_AUDIO_TTL_S, LiveEnd, live_audio_stream, read_entry
from whisp_shared.logs import get_logger
from whisp_shared.streams import LIVE_RECORDINGS, TRANSCRIBERS_GROUP, TRANSCRIPTS
from whisp_shared.views import TranscriptPartial
from whisp_transcription import metrics
from whisp_transcription.consumer import (
    ModelUse,
    failure_event,
    transcribe_options,
    transcript_ready,
)
from whisp_transcription.engines.base import Engine, Transcription
from whisp_transcription.engines.faster_whisper_engine import FasterWhisperEngine
from whisp_transcription.live_decoder import LiveDecoder, Partial
from whisp_transcription.model_thread import ModelThread
from whisp_transcription.settings import TranscriptionSettings

log = get_logger(__name__)

READ_COUNT = 10_000
"""Entries per XREAD: a replay after a reclaim catches up in one read and one model step."""

Entries = list[tuple[bytes, dict[bytes, bytes]]]


def shown_key(recording_id: str) -> str:
    """The last partial a user was shown of a live recording (JSON), for a reclaiming peer."""
    return f"whisp:live-partial:{recording_id}"


class LiveAudioTimeout(PermanentError):
    code = ErrorCode.LIVE_AUDIO_TIMEOUT
    status = 408


class LiveNotSupported(PermanentError):
    code = ErrorCode.LIVE_NOT_SUPPORTED
    status = 501


class LiveTranscriber:
    """This process's share of the live recordings: at most `max_live_sessions` at once."""

    def __init__(
        self,
        engine: Engine,
        bus: EventBus,
        settings: TranscriptionSettings,
        thread: ModelThread,
        use: ModelUse,
    ) -> None:
        self.engine = engine
        self.bus = bus
        self.settings = settings
        self.thread = thread
        self.use = use

    def consumer(self) -> Consumer:
        sessions = self.settings.max_live_sessions
        return Consumer(
            stream=LIVE_RECORDINGS,
            group=TRANSCRIBERS_GROUP,
            output_stream=TRANSCRIPTS,
            handler=self.handle,
            on_failure=failure_event,
            accepts=lambda event: isinstance(event, LiveRecordingStarted),
            max_workers=sessions,
            read_count=1,  # one at a time: simultaneous presses spread over the workers
        )

    async def handle(self, event: Event) -> TranscriptReady | None:
        assert isinstance(event, LiveRecordingStarted)  # `accepts` let nothing else through
        engine = self.engine
        if not isinstance(engine, FasterWhisperEngine):
            raise LiveNotSupported(
                f"live transcription needs the faster-whisper engine; this worker runs "
                f"{engine.name}: send the recording as an upload instead"
            )
        decoder = LiveDecoder(
            engine, transcribe_options(event), partial_every_s=self.settings.live_partial_every_s
        )
        metrics.LIVE_ACTIVE.inc()
        try:
            with self.use.busy():
                return await _Follower(self, event, decoder).run()
        except Exception:
            metrics.LIVE_OUTCOMES.labels("failed").inc()
            raise
        finally:
            metrics.LIVE_ACTIVE.dec()


class _Follower:
    """One delivery of one live recording, from the stream's first entry to its end."""

    def __init__(
        self, owner: LiveTranscriber, event: LiveRecordingStarted, decoder: LiveDecoder
    ) -> None:
        self.owner = owner
        self.event = event
        self.decoder = decoder
        self.stream = live_audio_stream(event.recording_id)
        self.cursor: bytes | str = "0-0"
        self.shown: tuple[str, str] | None = None
        self.partials = 0
        self.model_s: defaultdict[str, float] = defaultdict(float)

    async def run(self) -> TranscriptReady | None:
        thread = self.owner.thread
        await self._resume()
        while True:
            chunks, end = await self._next_batch()
            if end is None:
                partial, kind, seconds = await thread.run(_advance, self.decoder, chunks)
                self._spent(kind, seconds)
                if partial is not None:
                    await self._publish(partial)
                continue
            if end.kind == "cancel":
                metrics.LIVE_OUTCOMES.labels("cancelled").inc()
                log.info("live recording cancelled", audio_s=round(self.decoder.duration_s, 2))
                return None
            committed = time.perf_counter()
            result, seconds = await thread.run(_finish, self.decoder, chunks)
            self._spent("final", seconds)
            waited = time.perf_counter() - committed
            metrics.LIVE_FINAL_SECONDS.observe(waited)
            metrics.LIVE_OUTCOMES.labels("committed").inc()
            return self._ready(result, waited)

    async def _next_batch(self) -> tuple[list[npt.NDArray[np.float32]], LiveEnd | None]:
        """Whatever audio came since the last batch (waiting for some), and the end entry if
        it came too."""
        idle_s = self.owner.settings.live_idle_timeout_s
        deadline = time.monotonic() + idle_s
        redis = self.owner.bus.redis
        while True:
            wait_s = deadline - time.monotonic()
            if wait_s <= 0:
                raise LiveAudioTimeout(
                    f"no audio and no end for {idle_s:g} s: the live recording was abandoned "
                    f"after {self.decoder.duration_s:.1f} s of audio"
                )
            reply = cast(
                list[tuple[bytes, Entries]] | None,
                await redis.xread(
                    cast(Any, {self.stream: self.cursor}),
                    count=READ_COUNT,
                    block=max(1, int(wait_s * 1000)),
                ),
            )
            if reply:
                break
        entries = reply[0][1]
        self.cursor = entries[-1][0]
        chunks: list[npt.NDArray[np.float32]] = []
        for _id, fields in entries:
            item = read_entry(fields)
            if isinstance(item, LiveEnd):
                return chunks, item
            chunks.append(item)
        return chunks, None

    async def _resume(self) -> None:
        """After a reclaim: keep what the user was already shown as settled."""
        raw = await self.owner.bus.redis.get(shown_key(self.event.recording_id))
        if raw is None:
            return
        shown = TranscriptPartial.model_validate_json(raw)
        stable = shown.text[: shown.stable_chars]
        self.decoder.resume(stable)
        self.shown = (shown.text, stable)
        log.info("live recording resumed", settled_words=len(stable.split()))

    async def _publish(self, partial: Partial) -> None:
        shown = (partial.text, partial.stable)
        if shown == self.shown or (self.shown is None and not partial.text):
            return
        self.shown = shown
        update = TranscriptPartial(
            **self.event.follow_up(),
            text=partial.text,
            stable_chars=len(partial.stable),
            sequence=round(self.decoder.duration_s * 1000),  # audio ms: grows across a replay
        )
        redis = self.owner.bus.redis
        try:
            await redis.set(shown_key(update.recording_id), update.model_dump_json(),
                            ex=LIVE_AUDIO_TTL_S)  # fmt: skip
            await self.owner.bus.publish_live(update)
        except Exception as exc:  # a lost partial costs nothing; the final still comes
            log.warning("publishing a partial failed", error=str(exc))
            return
        self.partials += 1
        metrics.LIVE_PARTIALS.inc()

    def _spent(self, kind: str, seconds: float) -> None:
        if kind:
            self.model_s[kind] += seconds
            metrics.LIVE_MODEL_SECONDS.labels(kind).inc(seconds)

    def _ready(self, result: Transcription, waited: float) -> TranscriptReady:
        audio_s = self.decoder.duration_s
        log.info(
            "live recording committed",
            audio_s=round(audio_s, 2),
            final_s=round(waited, 4),
            partials=self.partials,
            model_s={kind: round(s, 3) for kind, s in self.model_s.items()},
        )
        return transcript_ready(self.event, result, self.owner.engine, audio_s, waited)


# --- on the model thread -----------------------------------------------------------------


def _advance(
    decoder: LiveDecoder, chunks: list[npt.NDArray[np.float32]]
) -> tuple[Partial | None, str, float]:
    """Take a batch of audio, then one step: a speculative final if one is due, else a
    partial if one is due. (The partial, which step ran, its seconds.)"""
    started = time.perf_counter()
    if chunks:
        decoder.append(np.concatenate(chunks))
    if decoder.speculation_due():
        decoder.speculate()
        return None, "speculate", time.perf_counter() - started
    if decoder.partial_due():
        partial = decoder.partial()
        return partial, "partial", time.perf_counter() - started
    return None, "", 0.0


def _finish(
    decoder: LiveDecoder, chunks: list[npt.NDArray[np.float32]]
) -> tuple[Transcription, float]:
    """The last audio, then the final (the speculative one when nothing but silence came
    after it)."""
    started = time.perf_counter()
    if chunks:
        decoder.append(np.concatenate(chunks))
    return decoder.final(), time.perf_counter() - started
