"""What each event says about a recording, written as upserts keyed by ids the events carry:
a redelivered event changes nothing, and the order in which the three streams' events
arrive does not matter.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func

from whisp_gateway.repository.engine import Database, utc
from whisp_gateway.repository.tables import answers, transcripts
from whisp_shared.events import (
    AgentFailed,
    AgentResponded,
    Event,
    LiveRecordingStarted,
    RecordingCompleted,
    TranscriptionFailed,
    TranscriptReady,
)
from whisp_shared.options import AgentRoute
from whisp_shared.views import Answer, Transcript


class SqlProjection(Database):
    async def apply(self, event: Event) -> None:
        """Record what an event says about a recording; idempotent and order-independent."""
        now = datetime.now(UTC)
        async with self.engine.begin() as conn:
            if isinstance(event, RecordingCompleted):
                # The recording's own facts win over an outcome that arrived first: its time
                # (the history's order) always, the rest where the outcome did not say.
                origin = {
                    "duration_s": event.duration_s,
                    "agent_id": event.agent_id,
                    "pipeline": event.pipeline,
                    "session_id": event.session_id,
                }
                stmt = self._insert(transcripts).values(
                    recording_id=event.recording_id,
                    user_id=event.user_id,
                    status="processing",
                    text="",
                    segments=[],
                    created_at=utc(event.created_at),
                    updated_at=now,
                    **origin,
                )
                await conn.execute(
                    stmt.on_conflict_do_update(
                        index_elements=["recording_id"],
                        set_={
                            "created_at": stmt.excluded.created_at,
                            **{
                                k: func.coalesce(transcripts.c[k], stmt.excluded[k]) for k in origin
                            },
                        },
                        where=transcripts.c.user_id == event.user_id,
                    )
                )
            elif isinstance(event, TranscriptReady | TranscriptionFailed):
                await self._upsert_outcome(conn, event, now)
            elif isinstance(event, AgentResponded | AgentFailed):
                await conn.execute(
                    self._insert(answers)
                    .values(**_answer_row(event))
                    .on_conflict_do_nothing(index_elements=["event_id"])
                )
                # An answer can overtake its transcript (two streams): a placeholder row
                # makes it visible at once; the transcript's own events fill the rest in.
                await conn.execute(
                    self._insert(transcripts)
                    .values(
                        recording_id=event.recording_id,
                        user_id=event.user_id,
                        status="processing",
                        text="",
                        segments=[],
                        agent_id=event.agent_id,
                        pipeline=event.pipeline,
                        created_at=utc(event.created_at),
                        updated_at=now,
                    )
                    .on_conflict_do_nothing(index_elements=["recording_id"])
                )

    async def accepted(
        self, user_id: str, recording_id: str, duration_s: float | None, route: AgentRoute
    ) -> None:
        """The row an upload's `RecordingCompleted` will write, written at once when the
        gateway accepts it, so the transcript's address answers ("processing") from the
        moment the client is told it; the event's own facts win when it arrives, and an
        outcome that got here first is left as it is."""
        now = datetime.now(UTC)
        async with self.engine.begin() as conn:
            await conn.execute(
                self._insert(transcripts)
                .values(
                    recording_id=recording_id,
                    user_id=user_id,
                    status="processing",
                    text="",
                    segments=[],
                    duration_s=duration_s,
                    created_at=now,
                    updated_at=now,
                    **route.model_dump(),
                )
                .on_conflict_do_nothing(index_elements=["recording_id"])
            )

    async def _upsert_outcome(
        self, conn: Any, event: TranscriptReady | TranscriptionFailed, now: datetime
    ) -> None:
        if isinstance(event, TranscriptReady):
            fields: dict[str, Any] = {
                "status": "done",
                "text": event.text,
                "raw_text": event.raw_text,
                "language": event.language,
                "segments": [s.model_dump(mode="json") for s in event.segments],
                "duration_s": event.audio_duration_s,
                "processing_s": event.processing_s,
                "engine": event.engine,
                "model": event.model,
                "error_code": None,
                "error_message": None,
            }
        else:
            fields = {"status": "failed", "error_code": event.code, "error_message": event.message}
        # Before its RecordingCompleted, the outcome's own time and agent stand in.
        agent = (
            {"agent_id": event.agent_id, "pipeline": event.pipeline, "session_id": event.session_id}
            if isinstance(event, TranscriptReady)
            else {}
        )
        stmt = self._insert(transcripts).values(
            recording_id=event.recording_id,
            user_id=event.user_id,
            created_at=utc(event.created_at),
            updated_at=now,
            **{"text": "", "segments": [], **agent, **fields},
        )
        await conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["recording_id"],
                set_={**fields, "updated_at": now},
                where=transcripts.c.user_id == event.user_id,
            )
        )


def _answer_row(event: AgentResponded | AgentFailed) -> dict[str, Any]:
    common = {
        "event_id": event.event_id,
        "recording_id": event.recording_id,
        "user_id": event.user_id,
        "agent_id": event.agent_id,
        "pipeline": event.pipeline,
        "created_at": utc(event.created_at),
    }
    if isinstance(event, AgentResponded):
        return {
            **common,
            "status": "done",
            "output": event.output,
            "usage": event.usage.model_dump(),
        }
    return {
        **common,
        "status": "failed",
        "output": "",
        "usage": {},
        "error_code": event.code,
        "error_message": event.message,
    }


def snapshot_of(event: Event) -> Transcript:
    """The transcript as far as one event tells it, for when the database cannot: the user
    still learns what happened (their history fills in once storing works again)."""
    now = datetime.now(UTC)
    base: dict[str, Any] = {
        "recording_id": event.recording_id,
        "status": "processing",
        "created_at": event.created_at,
        "updated_at": now,
    }
    if isinstance(event, RecordingCompleted):
        return Transcript(**base, duration_s=event.duration_s, **event.route().model_dump())
    if isinstance(event, LiveRecordingStarted):
        return Transcript(**base, **event.route().model_dump())
    if isinstance(event, TranscriptReady):
        return Transcript(
            **{**base, "status": "done"},
            text=event.text,
            raw_text=event.raw_text,
            language=event.language,
            segments=event.segments,
            duration_s=event.audio_duration_s,
            **event.route().model_dump(),
        )
    if isinstance(event, TranscriptionFailed):
        return Transcript(
            **{**base, "status": "failed"}, error_code=event.code, error_message=event.message
        )
    answer = Answer.model_validate({**_answer_row(event), "created_at": event.created_at})
    return Transcript(
        **{**base, "status": "done"},
        agent_id=event.agent_id,
        pipeline=event.pipeline,
        answers=[answer],
    )
