"""Stream and consumer-group names: one publisher per stream (see DESIGN.md)."""

from typing import Final

RECORDINGS: Final = "whisp:recordings"
"""RecordingCompleted; published by the audio service."""
TRANSCRIPTS: Final = "whisp:transcripts"
"""TranscriptReady | TranscriptionFailed; published by transcription workers."""
RESPONSES: Final = "whisp:responses"
"""AgentResponded | AgentFailed; published by the agent service."""

TRANSCRIBERS_GROUP: Final = "transcribers"
AGENTS_GROUP: Final = "agents"

RESULT_STREAMS: Final = (TRANSCRIPTS, RESPONSES)
"""What the gateway tails for its users (plain XREAD, every replica sees everything)."""


def dead_letter_stream(stream: str) -> str:
    """Where entries of `stream` go after too many failed deliveries."""
    return f"{stream}:dead"
