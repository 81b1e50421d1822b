"""OpenAI's Realtime transcription protocol, the part a push-to-talk client speaks.

Client events are validated here (an unknown type, a bad field or bad base64 becomes an
`error` event, never a closed socket); server events are built here, in OpenAI's shapes,
so the `openai` SDK and any Realtime client read them unchanged. Names follow the GA API
(`session.update` with `session.type: "transcription"`).
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from whisp_shared.codes import ErrorCode
from whisp_shared.events import new_id

PCM_RATES = (16_000, 24_000)
"""OpenAI accepts 24 kHz PCM16; 16 kHz (what our own clients record) is taken as well."""


class _Lenient(BaseModel):
    """OpenAI adds fields over time: unknown ones are ignored, known ones validated."""

    model_config = ConfigDict(extra="ignore")


class AudioFormat(_Lenient):
    type: Literal["audio/pcm"] = "audio/pcm"
    rate: int = 24_000


class Transcription(_Lenient):
    model: str | None = None
    language: str | None = Field(default=None, max_length=16)
    prompt: str | None = Field(default=None, max_length=2_000)


class TurnDetection(_Lenient):
    type: Literal["server_vad", "semantic_vad"]
    silence_duration_ms: int = Field(default=500, ge=100, le=5_000)


class AudioInput(_Lenient):
    format: AudioFormat | None = None
    transcription: Transcription | None = None
    turn_detection: TurnDetection | None = None


class Audio(_Lenient):
    input: AudioInput | None = None


class SessionConfig(_Lenient):
    type: Literal["transcription"] = "transcription"
    audio: Audio | None = None


class SessionUpdate(_Lenient):
    type: Literal["session.update"]
    event_id: str | None = None
    session: SessionConfig


class Append(_Lenient):
    type: Literal["input_audio_buffer.append"]
    event_id: str | None = None
    audio: str
    """Base64 PCM16 little-endian mono at the session's rate."""

    def pcm(self) -> bytes:
        try:
            return base64.b64decode(self.audio, validate=True)
        except (binascii.Error, ValueError):
            message = "`audio` is not valid base64"
            raise ProtocolError(ErrorCode.INVALID_AUDIO, message, "audio") from None


class Commit(_Lenient):
    type: Literal["input_audio_buffer.commit"]
    event_id: str | None = None


class Clear(_Lenient):
    type: Literal["input_audio_buffer.clear"]
    event_id: str | None = None


ClientEvent = Annotated[SessionUpdate | Append | Commit | Clear, Field(discriminator="type")]
CLIENT_EVENT: TypeAdapter[ClientEvent] = TypeAdapter(ClientEvent)


class ProtocolError(Exception):
    """A client event that cannot be acted on; becomes an `error` event, the socket stays."""

    def __init__(self, code: ErrorCode, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param


def parse_client_event(raw: str | bytes) -> ClientEvent:
    try:
        return CLIENT_EVENT.validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        if first["type"] == "json_invalid":
            raise ProtocolError(ErrorCode.INVALID_JSON, "the message is not JSON") from None
        if first["type"] in ("union_tag_invalid", "union_tag_not_found"):
            message = f"unsupported event type: {first.get('input')!r}"[:200]
            raise ProtocolError(ErrorCode.UNKNOWN_EVENT, message, "type") from None
        raise ProtocolError(ErrorCode.INVALID_EVENT, f"{where}: {first['msg']}", where) from None


# --- server events ------------------------------------------------------------------------


def server_event(kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "event_id": f"event_{new_id()[:24]}", **fields}


def session_body(
    session_id: str, rate: int, transcription: Transcription, vad: TurnDetection | None
) -> dict[str, Any]:
    return {
        "type": "transcription",
        "id": session_id,
        "object": "realtime.transcription_session",
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": rate},
                "transcription": transcription.model_dump(),
                "turn_detection": vad.model_dump() if vad else None,
                "noise_reduction": None,
            }
        },
    }


def error_event(
    code: str,
    message: str,
    param: str | None = None,
    event_id: str | None = None,
    kind: str = "invalid_request_error",
) -> dict[str, Any]:
    error = {"type": kind, "code": code, "message": message, "param": param, "event_id": event_id}
    return server_event("error", error=error)


def committed(item_id: str, previous_item_id: str | None) -> dict[str, Any]:
    return server_event(
        "input_audio_buffer.committed", item_id=item_id, previous_item_id=previous_item_id
    )


def delta(item_id: str, text: str) -> dict[str, Any]:
    return server_event(
        "conversation.item.input_audio_transcription.delta",
        item_id=item_id,
        content_index=0,
        delta=text,
    )


def completed(item_id: str, transcript: str, seconds: float) -> dict[str, Any]:
    return server_event(
        "conversation.item.input_audio_transcription.completed",
        item_id=item_id,
        content_index=0,
        transcript=transcript,
        usage={"type": "duration", "seconds": round(seconds, 3)},
    )


def failed(item_id: str, code: str, message: str) -> dict[str, Any]:
    return server_event(
        "conversation.item.input_audio_transcription.failed",
        item_id=item_id,
        content_index=0,
        error={"type": "transcription_error", "code": code, "message": message, "param": None},
    )
