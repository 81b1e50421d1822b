"""Events as the services publish them, with the knobs the gateway tests turn."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from whisp_gateway.repository.projection import snapshot_of
from whisp_shared.events import (
    AgentFailed,
    AgentResponded,
    RecordingCompleted,
    Segment,
    TokenUsage,
    TranscriptionFailed,
    TranscriptReady,
    Word,
)
from whisp_shared.views import TranscriptUpdated

T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def recorded(
    recording_id: str,
    user_id: str = "alice",
    *,
    created_at: datetime = T0,
    agent_id: str | None = None,
    pipeline: str | None = None,
    session_id: str | None = None,
    duration_s: float | None = 2.5,
) -> RecordingCompleted:
    return RecordingCompleted(
        recording_id=recording_id,
        user_id=user_id,
        trace_id=f"trace-{recording_id}",
        created_at=created_at,
        audio_uri=f"http://audio/audio/{recording_id}",
        duration_s=duration_s,
        agent_id=agent_id,
        pipeline=pipeline,
        session_id=session_id,
    )


def segments_for(text: str, start: float = 0.0, per_word_s: float = 0.4) -> list[Segment]:
    """One segment per sentence-ish chunk of three words, with word timestamps."""
    words = text.split()
    out: list[Segment] = []
    t = start
    for i in range(0, len(words), 3):
        chunk = words[i : i + 3]
        timed = [
            Word(start=t + n * per_word_s, end=t + (n + 1) * per_word_s, word=w)
            for n, w in enumerate(chunk)
        ]
        out.append(Segment(start=t, end=timed[-1].end, text=" ".join(chunk), words=timed))
        t = timed[-1].end + 0.1
    return out


def transcribed(
    recording_id: str,
    text: str,
    user_id: str = "alice",
    *,
    created_at: datetime | None = None,
    agent_id: str | None = None,
    pipeline: str | None = None,
    session_id: str | None = None,
    segments: list[Segment] | None = None,
    language: str | None = "en",
) -> TranscriptReady:
    segs = segments_for(text) if segments is None else segments
    duration = round(segs[-1].end + 0.2, 3) if segs else 1.0
    return TranscriptReady(
        recording_id=recording_id,
        user_id=user_id,
        trace_id=f"trace-{recording_id}",
        event_id=f"tr-{recording_id}",
        created_at=created_at or T0 + timedelta(seconds=3),
        text=text,
        language=language,
        segments=segs,
        engine="faster-whisper",
        model="tiny.en",
        audio_duration_s=duration,
        processing_s=0.25,
        real_time_factor=0.1,
        agent_id=agent_id,
        pipeline=pipeline,
        session_id=session_id,
    )


def failed(
    recording_id: str, user_id: str = "alice", *, code: str = "undecodable_audio"
) -> TranscriptionFailed:
    return TranscriptionFailed(
        recording_id=recording_id,
        user_id=user_id,
        trace_id=f"trace-{recording_id}",
        event_id=f"tf-{recording_id}",
        created_at=T0 + timedelta(seconds=3),
        code=code,
        message="the audio could not be decoded",
    )


def answered(
    recording_id: str,
    output: str,
    user_id: str = "alice",
    *,
    agent_id: str = "summarizer",
    event_id: str | None = None,
) -> AgentResponded:
    return AgentResponded(
        recording_id=recording_id,
        user_id=user_id,
        trace_id=f"trace-{recording_id}",
        event_id=event_id or f"ar-{recording_id}",
        created_at=T0 + timedelta(seconds=5),
        agent_id=agent_id,
        output=output,
        usage=TokenUsage(requests=1, input_tokens=10, output_tokens=5, total_tokens=15),
    )


def agent_failed(
    recording_id: str, user_id: str = "alice", *, agent_id: str = "summarizer"
) -> AgentFailed:
    return AgentFailed(
        recording_id=recording_id,
        user_id=user_id,
        trace_id=f"trace-{recording_id}",
        event_id=f"af-{recording_id}",
        created_at=T0 + timedelta(seconds=6),
        agent_id=agent_id,
        code="agent_unavailable",
        message="the model server did not answer",
        retryable=True,
    )


def updated(event: TranscriptReady) -> TranscriptUpdated:
    """What the gateway forwards to the user-events stream after storing `event`."""
    return TranscriptUpdated(
        **event.follow_up(), event_id=event.event_id, transcript=snapshot_of(event)
    )
