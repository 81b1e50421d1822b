"""Store every result once, then forward the owner's snapshot to the users' live stream.

One consumer group (`gateway`) per source stream, shared by all gateway replicas, so each
event is stored exactly once however many replicas run. The handler's output is the
user's stored transcript after the event (`TranscriptUpdated`), published to
`whisp:user-events` in the bus's atomic finish: a user sees a change live only once it is
in their history, and sees it exactly once. If storing keeps failing, a snapshot built
from the event alone is still forwarded (the event is dead-lettered for ops), so the user
is never left waiting on a database problem.

Each `TranscriptReady` also goes into the rolling record of processing times that queue
estimates read (`whisp_shared.queue_position`): this group sees every one exactly once.
Each `RecordingCompleted` counts against its owner's daily audio quota, once by its id: an
upload or a stopped device recording was counted as it was answered, but a device recording
that stopped itself at its maximum length had no request to count it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from whisp_gateway import metrics
from whisp_gateway.quota import Quota
from whisp_gateway.repository import Repository
from whisp_gateway.repository.projection import snapshot_of
from whisp_gateway.settings import QuotaSettings
from whisp_shared.bus import Consumer, EventBus
from whisp_shared.events import Event, FailureFields, RecordingCompleted, TranscriptReady
from whisp_shared.queue_position import record_processing
from whisp_shared.streams import (
    GATEWAY_GROUP,
    PRIORITY_RECORDINGS,
    RECORDINGS,
    RESPONSES,
    TRANSCRIPTS,
    USER_EVENTS,
)
from whisp_shared.views import Transcript, TranscriptUpdated


def _updated(event: Event, transcript: Transcript) -> TranscriptUpdated:
    lag = (datetime.now(UTC) - event.created_at).total_seconds()
    metrics.FORWARD_LAG.observe(max(lag, 0.0))
    return TranscriptUpdated(
        **event.follow_up(),
        event_id=event.event_id,
        created_at=event.created_at,
        transcript=transcript,
    )


def snapshot_consumers(repo: Repository, bus: EventBus, quota: QuotaSettings) -> list[Consumer]:
    async def store(event: Event) -> TranscriptUpdated | None:
        await repo.apply(event)
        if isinstance(event, TranscriptReady):
            await record_processing(bus.redis, event)
        elif isinstance(event, RecordingCompleted) and event.duration_s:
            await Quota(bus.redis, quota).add(
                event.user_id, event.duration_s, event.recording_id, at=event.created_at
            )
        stored = await repo.get(event.user_id, event.recording_id)
        # None: the owner deleted it meanwhile, or the event names another user's recording.
        return _updated(event, stored) if stored is not None else None

    def deliver_anyway(event: Event, _failure: FailureFields) -> TranscriptUpdated:
        return _updated(event, snapshot_of(event))

    return [
        Consumer(stream, GATEWAY_GROUP, USER_EVENTS, store, deliver_anyway)
        for stream in (PRIORITY_RECORDINGS, RECORDINGS, TRANSCRIPTS, RESPONSES)
    ]
