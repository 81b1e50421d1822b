"""Stream and consumer-group names: one publisher per stream (see DESIGN.md)."""

from typing import Final

RECORDINGS: Final = "whisp:recordings"
"""RecordingCompleted; published by the audio service (long uploads: the bulk lane)."""
PRIORITY_RECORDINGS: Final = "whisp:recordings-priority"
"""RecordingCompleted of what a person is waiting for (push-to-talk clips, device
recordings): the same group reads it, and its workers take these first (`lanes`)."""
LIVE_RECORDINGS: Final = "whisp:live-recordings"
"""LiveRecordingStarted; published by the audio service when a live session starts speaking
(its audio is on `live_audio.live_audio_stream`)."""
TRANSCRIPTS: Final = "whisp:transcripts"
"""TranscriptReady | TranscriptionFailed; published by transcription workers."""
RESPONSES: Final = "whisp:responses"
"""AgentResponded | AgentFailed; published by the agent service."""

USER_EVENTS: Final = "whisp:user-events"
"""Every event a user should see, in one order, after the gateway stored it; published only
by the gateway's persistence group. Its ids are the SSE event ids (exact resume)."""

LIVE: Final = "whisp:live"
"""Live-only events for users' open pages (partial text, answer deltas): short, capped, read
by no group and never stored or replayed; published with `EventBus.publish_live`."""
AUDIO_KEPT: Final = "whisp:audio-kept"
"""AudioKept (`user_data`): audio the audio service gave up deleting although its owner
asked for it (`keep_audio: false`); published by the audio service, read by ops (the entry
itself is in `whisp:transcripts:dead`, to replay). Retention removes the audio in time."""

TRANSCRIBERS_GROUP: Final = "transcribers"
AGENTS_GROUP: Final = "agents"
GATEWAY_GROUP: Final = "gateway"
AUDIO_GROUP: Final = "audio"
"""The audio service on TRANSCRIPTS: deletes the audio of `keep_audio: false` recordings
once their transcript is ready."""

GROUP_STREAMS: Final = (
    RECORDINGS,
    PRIORITY_RECORDINGS,
    LIVE_RECORDINGS,
    TRANSCRIPTS,
    RESPONSES,
)
"""Streams consumer groups read: trimmed by their slowest group (`bus_trim`), capped only
by `stream_hard_maxlen`. The others (user events, dead letters) keep `stream_maxlen`."""

RESULT_STREAMS: Final = (TRANSCRIPTS, RESPONSES)
"""Results the gateway persists (and forwards to USER_EVENTS)."""


def dead_letter_stream(stream: str) -> str:
    """Where entries of `stream` go after too many failed deliveries."""
    return f"{stream}:dead"
