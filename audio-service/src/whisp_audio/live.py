"""Live recordings: audio that arrives while the key is held, stored the moment it is let go.

A live recording is a small Redis hash (`live_sessions`: owner, client rate, resampler
state, limit, state) beside its audio stream (`live_audio.live_audio_stream`), so any
replica of this service can take the next call. Its life:

    open ──append*──► closing ──► committed      (commit, or the max duration reached)
      └──────────────────┴──────► cancelled

- `start` writes the hash, then announces `LiveRecordingStarted` on `whisp:live-recordings`
  (a transcription worker follows the audio from there).
- `append` resamples the chunk to 16 kHz (`resample`, its state in the hash) and, in one
  Lua call that first checks nobody else moved the recording meanwhile, XADDs it and saves
  the new state. Outputs below 20 ms wait in the hash for the next chunk, so the stream's
  entry count stays bounded by the duration (its MAXLEN never trims a recording).
- `commit` writes the last samples and moves to `closing` (no more audio), stores the
  stream's audio as the recording's WAV (`RecordingStore`: history, download and retention
  as for uploads, and `keep_audio` carried over from the start), then XADDs the commit
  entry with its URI. No `RecordingCompleted`: the live worker writes the transcript. A
  commit that finds `closing` (a replica died half way, or a retry) finishes the job; one
  that finds `committed` answers the same again.
- `cancel` XADDs the cancel entry. Both ends set the stream's and the hash's TTL.
"""

from __future__ import annotations

import asyncio
import io
import time
import wave
from dataclasses import dataclass
from typing import Final

from whisp_audio import metrics
from whisp_audio.errors import (
    BadAudioChunk,
    BusUnavailable,
    Busy,
    MaxDurationReached,
    RecordingEnded,
    recording_not_found,
)
from whisp_audio.ingest import Ingest
from whisp_audio.live_sessions import ENTRY_MIN_SAMPLES, LiveSessions, Session
from whisp_audio.resample import Resampler, ResampleState
from whisp_audio.settings import AudioSettings
from whisp_audio.storage import InvalidRecordingId, RecordingStore, check_id, new_recording_id
from whisp_shared.bus import EventBus
from whisp_shared.caller import Caller
from whisp_shared.events import LiveRecordingStarted
from whisp_shared.live_audio import LIVE_SAMPLE_RATE, end_fields
from whisp_shared.logs import get_logger
from whisp_shared.options import RecordingOptions
from whisp_shared.streams import LIVE_RECORDINGS

log = get_logger(__name__)

ATTEMPTS: Final = 8
"""Tries of one call when other calls keep changing the recording under it."""


@dataclass(frozen=True)
class LiveStarted:
    recording_id: str
    sample_rate: int
    max_duration_s: float


@dataclass(frozen=True)
class LiveCommitted:
    recording_id: str
    duration_s: float


def pcm_wav(pcm: bytes, rate: int = LIVE_SAMPLE_RATE) -> bytes:
    """PCM16 mono as a WAV file, byte for byte (no float round trip)."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm)
    return buffer.getvalue()


class LiveRecordings:
    """The four calls of a live recording (see the module's docstring)."""

    def __init__(
        self, store: RecordingStore, ingest: Ingest, bus: EventBus, settings: AudioSettings
    ) -> None:
        self.store = store
        self.ingest = ingest
        self.bus = bus
        self.settings = settings
        self._sessions: LiveSessions | None = None
        self._resamplers: dict[int, Resampler] = {}

    @property
    def sessions(self) -> LiveSessions:
        """On the bus's connection (made in the lifespan; a new one after a reconnect)."""
        redis = self.bus.redis
        if self._sessions is None or self._sessions.redis is not redis:
            self._sessions = LiveSessions(redis)
        return self._sessions

    async def start(
        self,
        user_id: str,
        options: RecordingOptions,
        sample_rate: int,
        max_duration_s: float | None = None,
    ) -> LiveStarted:
        """Open a live recording and announce it; its audio follows with `append`."""
        limit = min(max_duration_s or self.settings.max_duration_s, self.settings.max_duration_s)
        recording_id = new_recording_id()
        event = LiveRecordingStarted(
            recording_id=recording_id,
            user_id=user_id,
            max_duration_s=limit,
            **options.options().model_dump(),
        )
        sessions = self.sessions
        await sessions.create(
            recording_id,
            user_id,
            sample_rate,
            round(limit * LIVE_SAMPLE_RATE),
            keep_audio=options.keep_audio,
        )
        try:
            await self.bus.publish(LIVE_RECORDINGS, event)
        except Exception as exc:
            log.error("announcing a live recording failed", error=str(exc),
                      recording_id=recording_id)  # fmt: skip
            try:
                await sessions.delete(recording_id)
            except Exception as cleanup:  # best effort: it expires anyway
                log.warning("removing an unannounced live recording failed", error=str(cleanup))
            raise BusUnavailable(
                "the live recording could not be announced (message bus unreachable); "
                "please try again"
            ) from exc
        metrics.LIVE_SESSIONS.labels("started").inc()
        log.info("live recording started", recording_id=recording_id, user_id=user_id,
                 rate=sample_rate, trace_id=event.trace_id)  # fmt: skip
        return LiveStarted(recording_id, sample_rate, limit)

    async def append(self, caller: Caller, recording_id: str, pcm: bytes) -> None:
        """Take one chunk of PCM16 at the recording's rate. Past the maximum length the
        recording is committed there and `MaxDurationReached` says so."""
        if len(pcm) % 2:
            raise BadAudioChunk(
                f"live audio must be whole 16-bit samples; {len(pcm)} bytes is an odd count"
            )
        for _attempt in range(ATTEMPTS):
            session = await self._owned(caller, recording_id)
            self._refuse_ended(session)
            resampler = self._resampler(session.rate)
            out, state = await asyncio.to_thread(resampler.feed, session.resample, pcm)
            if resampler.output_length(state.consumed) > session.max_samples:
                if await self._append_last(session, resampler, out, state):
                    await self._finish_commit(recording_id, "max_duration")
                    raise self._at_max(session)
                continue
            pending = session.pending + out
            ready = len(pending) >= 2 * ENTRY_MIN_SAMPLES
            outcome = await self.sessions.append(
                session, state, pcm=pending if ready else b"", pending=b"" if ready else pending
            )
            if outcome == "ok":
                metrics.LIVE_AUDIO_SECONDS.inc(len(out) / 2 / LIVE_SAMPLE_RATE)
                return
        raise Busy("the recording kept changing under this call: send its audio in order")

    async def commit(self, caller: Caller, recording_id: str) -> LiveCommitted:
        """Store the recording and end its stream; again: the same answer."""
        for _attempt in range(ATTEMPTS):
            session = await self._owned(caller, recording_id)
            if session.state == "committed":
                return LiveCommitted(recording_id, session.duration_s)
            if session.state == "cancelled":
                raise RecordingEnded("this live recording was cancelled; it cannot be committed")
            if session.state == "open":
                resampler = self._resampler(session.rate)
                rest = session.pending + resampler.flush(session.resample)
                spent = ResampleState(session.resample.consumed, session.resample.emitted)
                outcome = await self.sessions.append(
                    session, spent, pcm=rest, pending=b"", next_state="closing", ended_by="commit"
                )
                if outcome not in ("ok", "closing"):
                    continue
            return await self._finish_commit(recording_id, "commit")
        raise Busy("the recording kept changing under this call; try again")

    async def cancel(self, caller: Caller, recording_id: str) -> None:
        """End the recording without keeping it; again: no-op."""
        session = await self._owned(caller, recording_id)
        if session.state == "cancelled":
            return
        if session.state == "committed":
            raise RecordingEnded("this live recording was already committed")
        outcome = await self.sessions.end(
            recording_id, ("open", "closing"), "cancelled", {"ended_by": "cancel"},
            end_fields("cancel"),
        )  # fmt: skip
        if outcome == "ok":
            metrics.LIVE_SESSIONS.labels("cancelled").inc()
            log.info("live recording cancelled", recording_id=recording_id)
        elif outcome != "cancelled":
            raise RecordingEnded("this live recording was already committed")

    # --- steps --------------------------------------------------------------------------

    async def _append_last(
        self, session: Session, resampler: Resampler, out: bytes, state: ResampleState
    ) -> bool:
        """Write the audio up to the maximum length and close: True if this call did."""
        room = 2 * (session.max_samples - session.written)
        audio = (session.pending + out + resampler.flush(state))[:room]
        spent = ResampleState(state.consumed, session.max_samples)
        outcome = await self.sessions.append(
            session, spent, pcm=audio, pending=b"", next_state="closing", ended_by="max_duration"
        )
        if outcome == "ok":
            fresh = max(len(audio) - len(session.pending), 0)
            metrics.LIVE_AUDIO_SECONDS.inc(fresh / 2 / LIVE_SAMPLE_RATE)
        return outcome == "ok"

    async def _finish_commit(self, recording_id: str, ended_by: str) -> LiveCommitted:
        """From `closing`: store the WAV, then the commit entry (once, whoever gets there)."""
        started = time.perf_counter()
        session = await self.sessions.get(recording_id)
        if session is None:
            raise recording_not_found()
        ended_by = session.ended_by or ended_by
        pcm = await self.sessions.recorded(recording_id)
        duration_s = round(len(pcm) / 2 / LIVE_SAMPLE_RATE, 3)
        meta = self.store.get(recording_id)
        if meta is None:
            try:
                meta = await asyncio.to_thread(
                    self.store.save,
                    recording_id,
                    user_id=session.user_id,
                    wav=pcm_wav(pcm),
                    duration_s=duration_s,
                    source="live",
                    keep_audio=session.keep_audio,
                )
            except OSError:  # another replica finishing the same commit saved it first
                meta = self.store.get(recording_id)
                if meta is None:
                    raise
        uri = self.ingest.audio_uri(meta)
        outcome = await self.sessions.end(
            recording_id, ("closing",), "committed",
            {"ended_by": ended_by, "duration_s": duration_s, "audio_uri": uri},
            end_fields("commit", uri, duration_s),
        )  # fmt: skip
        if outcome == "cancelled":
            await asyncio.to_thread(self.store.delete, recording_id)
            raise RecordingEnded("this live recording was cancelled while it was being committed")
        if outcome == "ok":
            metrics.LIVE_SESSIONS.labels("committed" if ended_by == "commit" else ended_by).inc()
            metrics.RECORDED_SECONDS.labels("live").inc(duration_s)
            metrics.INGEST_SECONDS.labels("live").observe(time.perf_counter() - started)
            log.info("live recording committed", recording_id=recording_id,
                     user_id=session.user_id, duration_s=duration_s, ended_by=ended_by)  # fmt: skip
        return LiveCommitted(recording_id, duration_s)

    async def _owned(self, caller: Caller, recording_id: str) -> Session:
        """The recording, if this caller may touch it; unknown, malformed, expired and
        another user's ids all get the same 404."""
        try:
            check_id(recording_id)
        except InvalidRecordingId:
            raise recording_not_found() from None
        session = await self.sessions.get(recording_id)
        if session is None or not caller.may_access(session.user_id):
            raise recording_not_found()
        return session

    def _refuse_ended(self, session: Session) -> None:
        if session.state == "open":
            return
        if session.ended_by == "max_duration":
            raise self._at_max(session)
        raise RecordingEnded(f"this live recording is {session.state}; it takes no more audio")

    def _at_max(self, session: Session) -> MaxDurationReached:
        limit = session.max_samples / LIVE_SAMPLE_RATE
        return MaxDurationReached(
            f"the recording reached its maximum length of {limit:g} s and was committed "
            "there; audio after that was not kept"
        )

    def _resampler(self, rate: int) -> Resampler:
        if rate not in self._resamplers:
            self._resamplers[rate] = Resampler(rate, LIVE_SAMPLE_RATE)
        return self._resamplers[rate]
