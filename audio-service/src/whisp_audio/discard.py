"""Audio its owner does not keep (`keep_audio: false`) is deleted once it is transcribed.

The audio service learns that from the bus: its own group (`audio`) on `whisp:transcripts`
takes every `TranscriptReady` and, for a recording stored with `keep_audio: false`, deletes
its audio files (`RecordingStore.discard_audio`) and, for a live one, its audio stream on
Redis. Recordings it does not know (another service's, or already purged) and those kept
are acked untouched; a redelivery finds the files gone, which is fine.

`TranscriptionFailed` keeps the audio: replaying the failed recording (a dead letter) needs
it, and retention removes it in time. A deletion that keeps failing (the disk) is retried
by the bus and finally dead-lettered, with an `AudioKept` notice for ops.
"""

from __future__ import annotations

import asyncio

from whisp_audio import metrics
from whisp_audio.live import LiveRecordings
from whisp_audio.storage import RecordingStore
from whisp_shared.bus import Consumer
from whisp_shared.events import Event, FailureFields, TranscriptReady
from whisp_shared.logs import get_logger
from whisp_shared.streams import AUDIO_GROUP, AUDIO_KEPT, TRANSCRIPTS
from whisp_shared.user_data import AudioKept

log = get_logger(__name__)


def _transcribed(event: Event) -> bool:
    return isinstance(event, TranscriptReady)


def _kept(event: Event, failure: FailureFields) -> AudioKept:
    return AudioKept(**event.follow_up(), **failure.model_dump())


def discard_consumer(store: RecordingStore, live: LiveRecordings) -> Consumer:
    async def discard(event: Event) -> None:
        meta = await asyncio.to_thread(store.get, event.recording_id)
        if meta is None or meta.keep_audio:
            return
        if meta.source == "live":
            await live.sessions.drop_audio(event.recording_id)
        freed = meta.disk_bytes  # 0 when a redelivery finds the files gone already
        await asyncio.to_thread(store.discard_audio, event.recording_id)
        if freed:
            metrics.AUDIO_DISCARDED.inc()
            log.info("audio deleted after its transcript (keep_audio off)",
                     recording_id=event.recording_id, freed_bytes=freed)  # fmt: skip

    return Consumer(
        stream=TRANSCRIPTS,
        group=AUDIO_GROUP,
        output_stream=AUDIO_KEPT,
        handler=discard,
        on_failure=_kept,
        accepts=_transcribed,
    )
