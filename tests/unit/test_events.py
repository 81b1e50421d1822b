"""Event models and the wire codec."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from whisp_shared.codec import decode_entry, encode_entry
from whisp_shared.events import (
    SCHEMA_VERSION,
    AgentFailed,
    RecordingCompleted,
    TranscriptReady,
    parse_event,
)


def make_recording(**extra: object) -> RecordingCompleted:
    return RecordingCompleted(
        recording_id="r1", user_id="u1", audio_uri="http://a/audio/r1", **extra
    )


async def test_codec_round_trip_keeps_type_and_fields() -> None:
    event = make_recording(agent_id="summarizer", duration_s=2.5)
    decoded = decode_entry(encode_entry(event))
    assert decoded == event
    assert isinstance(decoded, RecordingCompleted)


def test_entries_are_plain_fields_anyone_can_read() -> None:
    """What redis-cli, KEDA or a consumer in another language sees: the type and JSON."""
    event = make_recording(agent_id="summarizer")
    fields = encode_entry(event)
    assert set(fields) == {b"type", b"data"}
    assert fields[b"type"] == b"recording.completed"
    body = json.loads(fields[b"data"])
    assert body["recording_id"] == "r1" and body["agent_id"] == "summarizer"


def test_every_event_carries_identity_and_version() -> None:
    event = make_recording()
    assert event.version == SCHEMA_VERSION
    assert event.event_id and event.trace_id and event.created_at.tzinfo is not None
    follow = AgentFailed(**event.follow_up(), code="x", message="y")
    assert (follow.recording_id, follow.user_id, follow.trace_id) == ("r1", "u1", event.trace_id)
    assert follow.event_id != event.event_id


def test_discriminator_picks_the_concrete_type() -> None:
    event = TranscriptReady(
        recording_id="r",
        user_id="u",
        text="hi",
        engine="e",
        model="m",
        audio_duration_s=1,
        processing_s=0.1,
        real_time_factor=0.1,
        agent_id="a",
    )
    parsed = parse_event(event.model_dump_json())
    assert isinstance(parsed, TranscriptReady)
    assert parsed.wants_agent


@pytest.mark.parametrize(
    "payload",
    [
        b'{"type": "no.such.event", "recording_id": "r", "user_id": "u"}',
        b'{"type": "recording.completed", "recording_id": "r", "user_id": "u"}',
        b'{"type": "recording.completed", "recording_id": "", "user_id": "u", "audio_uri": "x"}',
        b'{"type": "recording.completed", "recording_id": "r", "user_id": "u", "audio_uri": "x",'
        b' "surprise": 1}',
        b"not json",
    ],
)
def test_invalid_events_are_rejected(payload: bytes) -> None:
    with pytest.raises(ValidationError):
        parse_event(payload)


def test_entry_without_payload_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"has no b.data. field"):
        decode_entry({b"other": b"x"})
