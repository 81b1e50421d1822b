"""One wire format for every reader and writer of the streams: plain fields, readable by anyone.

Each entry is `type` (the event's discriminator, e.g. `transcript.ready`) and `data` (the
event as JSON). `redis-cli XRANGE whisp:transcripts - +` shows what happened, KEDA and a
consumer in any language can read it, and FastStream's subscribers still parse it (they
take entries without their own `__data__` envelope as plain fields).
"""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, TypeAdapter

from whisp_shared.events import EVENT_ADAPTER, Event

TYPE_FIELD = b"type"
DATA_FIELD = b"data"

T = TypeVar("T")


def event_type(event: BaseModel) -> str:
    return str(getattr(event, "type", type(event).__name__))


def encode_entry(event: BaseModel) -> dict[bytes, bytes]:
    """Fields for XADD."""
    return {TYPE_FIELD: event_type(event).encode(), DATA_FIELD: event.model_dump_json().encode()}


def decode_fields(fields: dict[bytes, bytes], adapter: TypeAdapter[T]) -> T:
    """Validate one stream entry into whichever model family `adapter` describes."""
    data = fields.get(DATA_FIELD)
    if data is None:
        msg = f"stream entry has no {DATA_FIELD!r} field: fields {sorted(fields)}"
        raise ValueError(msg)
    return adapter.validate_json(data)


def decode_entry(fields: dict[bytes, bytes]) -> Event:
    """Validate one entry of a service stream (recordings, transcripts, responses)."""
    return decode_fields(fields, EVENT_ADAPTER)
