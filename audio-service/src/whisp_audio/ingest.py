"""The one way a recording enters the system: store it, then publish RecordingCompleted.

Uploads and device recordings both end here, so they are stored, named and announced
alike. Publishing comes last: an event never points at audio that is not on disk. If
the publish certainly did not happen (Redis refused the connection) the stored files are
removed again, so a refused request leaves nothing behind; if it may have happened (the
connection broke mid-command) the files stay, so the event never points at nothing.
"""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from whisp_audio import metrics
from whisp_audio.errors import BusUnavailable
from whisp_audio.formats import AudioKind
from whisp_audio.settings import AudioSettings
from whisp_audio.storage import RecordingStore, StoredRecording, new_recording_id
from whisp_recorder.convert import wav_bytes
from whisp_shared.audio import TARGET_RATE
from whisp_shared.bus import EventBus
from whisp_shared.events import RecordingCompleted
from whisp_shared.lanes import Lane
from whisp_shared.logs import get_logger
from whisp_shared.options import RecordingOptions
from whisp_shared.queue import LANE_STREAMS, QueueEntry

log = get_logger(__name__)


@dataclass(frozen=True)
class Accepted:
    """A recording stored and announced: what its submitter is told (and where it waits,
    so the gateway can tell its owner: `whisp_shared.queue`)."""

    recording_id: str
    duration_s: float
    audio_uri: str
    content_type: str
    queue: QueueEntry


def public_base_url(settings: AudioSettings) -> str:
    """Where workers reach this service; a wildcard bind is named by the host's name."""
    if settings.public_url:
        return settings.public_url.rstrip("/")
    host = settings.host
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 - naming the bind, not binding
        host = socket.gethostname()
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.port}"


def never_sent(exc: BaseException) -> bool:
    """Redis could not even be connected to, so the XADD was never written. redis-py says
    so only in its message ("Error 111 connecting to …", "Timeout connecting to server")."""
    return isinstance(exc, RedisConnectionError | RedisTimeoutError) and (
        "connecting to" in str(exc)
    )


class Ingest:
    def __init__(self, store: RecordingStore, bus: EventBus, settings: AudioSettings) -> None:
        self.store = store
        self.bus = bus
        self.settings = settings
        self.base_url = public_base_url(settings)

    def lane_of(self, source: Literal["upload", "device"], duration_s: float) -> Lane:
        """The priority lane for what a person waits for: a device recording (the key was
        just let go) or a short upload (the page's and the CLI's push-to-talk); long uploads
        go behind them (`whisp_shared.lanes`)."""
        limit = self.settings.priority_max_s
        if limit and (source == "device" or duration_s <= limit):
            return "priority"
        return "bulk"

    def audio_uri(self, meta: StoredRecording) -> str:
        if self.settings.audio_uri == "file":
            return self.store.path(meta, "wav").as_uri()
        return f"{self.base_url}/audio/{meta.recording_id}"

    async def submit(
        self,
        *,
        user_id: str,
        samples: npt.NDArray[np.float32],
        options: RecordingOptions,
        source: Literal["upload", "device"],
        original: bytes | None = None,
        kind: AudioKind | None = None,
    ) -> Accepted:
        """Store `samples` (16 kHz mono) as WAV beside the original, then announce it with
        the caller's `options` (any model that carries them: only the options are taken)."""
        started = time.perf_counter()
        recording_id = new_recording_id()
        duration_s = len(samples) / TARGET_RATE
        wav = await asyncio.to_thread(wav_bytes, samples)
        meta = await asyncio.to_thread(
            self.store.save,
            recording_id,
            user_id=user_id,
            wav=wav,
            duration_s=duration_s,
            source=source,
            original=original,
            content_type=kind.content_type if kind else "audio/wav",
            extension=kind.extension if kind else "wav",
            keep_audio=options.keep_audio,
        )
        event = RecordingCompleted(
            recording_id=recording_id,
            user_id=user_id,
            audio_uri=self.audio_uri(meta),
            content_type="audio/wav",
            duration_s=round(duration_s, 3),
            **options.options().model_dump(),
        )
        lane = self.lane_of(source, duration_s)
        try:
            entry_id = await self.bus.publish(LANE_STREAMS[lane], event)
        except Exception as exc:
            log.error("publishing a recording failed", error=str(exc), recording_id=recording_id)
            if never_sent(exc):
                await asyncio.to_thread(self.store.delete, recording_id)
                raise BusUnavailable(
                    "the recording could not be queued for transcription (message bus "
                    "unreachable); nothing was kept, please try again"
                ) from exc
            # The XADD may have landed before the answer was lost: keep the audio (retention
            # removes it in time), or a worker would find its event and no file.
            raise BusUnavailable(
                "the message bus went away while queuing the recording; it may still be "
                "transcribed (check your history before sending it again)"
            ) from exc
        metrics.PUBLISHED.labels(source).inc()
        metrics.RECORDED_SECONDS.labels(source).inc(duration_s)
        metrics.INGEST_SECONDS.labels(source).observe(time.perf_counter() - started)
        log.info(
            "recording published",
            recording_id=recording_id,
            user_id=user_id,
            source=source,
            duration_s=round(duration_s, 2),
            trace_id=event.trace_id,
        )
        queued = QueueEntry(lane=lane, entry_id=entry_id)
        return Accepted(recording_id, round(duration_s, 3), event.audio_uri, "audio/wav", queued)
