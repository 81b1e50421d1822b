"""One wire format for every reader and writer of the streams.

FastStream stores each entry as a single binary `__data__` field (its
BinaryMessageFormatV1: magic header, headers, JSON body). Writers that bypass a
FastStream publisher (transactions, plain XADD) and readers that bypass a
FastStream subscriber (the gateway's XREAD) use these two functions so all
sides agree byte for byte.
"""

from __future__ import annotations

from faststream.redis.message import bDATA_KEY
from faststream.redis.parser.binary import BinaryMessageFormatV1

from whisp_shared.events import Event, EventBase, parse_event

DATA_FIELD: bytes = bDATA_KEY


async def encode_entry(event: EventBase) -> dict[bytes, bytes]:
    """Fields for XADD that a FastStream subscriber parses back into `event`."""
    data = await BinaryMessageFormatV1.encode(
        message=event.model_dump_json().encode(),
        reply_to=None,
        headers={"content-type": "application/json", "event_type": _event_type(event)},
        correlation_id=event.trace_id,
    )
    return {DATA_FIELD: data}


def decode_entry(fields: dict[bytes, bytes]) -> Event:
    """Validate one stream entry (FastStream binary or a plain JSON `data` field)."""
    raw = fields.get(DATA_FIELD)
    if raw is not None:
        body, _headers = BinaryMessageFormatV1.parse(raw)
        return parse_event(body)
    plain = fields.get(b"data")
    if plain is None:
        msg = f"stream entry has neither {DATA_FIELD!r} nor b'data': fields {sorted(fields)}"
        raise ValueError(msg)
    return parse_event(plain)


def _event_type(event: EventBase) -> str:
    return str(getattr(event, "type", type(event).__name__))
