"""Reading Wyoming frames within limits, with the `wyoming` library's own reader.

`wyoming.event.async_read_event` does the framing (a JSON header line, then `data_length`
bytes of JSON, then `payload_length` bytes), but trusts the lengths it is given and
answers every problem with a bare None (or an exception of whatever kind the bad header
provokes). Here its stream is a `GuardedReader` that refuses to wait for more than
`max_event_bytes` at once and remembers why, so a client gets a precise `error` event:
`event_too_large`, or `invalid_frame` for a header that is not JSON or lies about its
lengths. After either the connection closes: what follows cannot be trusted to start on
a frame boundary.
"""

from __future__ import annotations

import asyncio

from wyoming.event import Event, async_read_event

from whisp_gateway.realtime.protocol import ProtocolError
from whisp_shared.codes import ErrorCode


class FrameError(ProtocolError):
    """The stream cannot be read any further: answer with an `error`, then close."""


class GuardedReader(asyncio.StreamReader):
    """A StreamReader whose lines and exact reads are capped at `max_bytes` each."""

    def __init__(self, max_bytes: int, loop: asyncio.AbstractEventLoop) -> None:
        # The line limit caps the header; buffering pauses the socket past twice that.
        super().__init__(limit=max_bytes, loop=loop)
        self.max_bytes = max_bytes
        self.refused: FrameError | None = None

    async def readline(self) -> bytes:
        try:
            return await super().readline()
        except ValueError:  # asyncio's "line is longer than the limit"
            self.refused = _too_large("header line", self.max_bytes)
            raise

    async def readexactly(self, n: int) -> bytes:
        if n > self.max_bytes:
            self.refused = _too_large(f"{n}-byte data or payload", self.max_bytes)
            raise ValueError(self.refused.message)
        return await super().readexactly(n)


def _too_large(what: str, limit: int) -> FrameError:
    message = f"a {what} is over this server's limit of {limit} bytes per part of an event"
    return FrameError(ErrorCode.EVENT_TOO_LARGE, message)


async def read_frame(reader: GuardedReader) -> Event | None:
    """The next event; None when the client has closed the connection (also mid-frame:
    there is nobody left to tell). Raises FrameError when the stream is broken."""
    try:
        event = await async_read_event(reader)
    except asyncio.IncompleteReadError:
        return None
    except (KeyError, TypeError, AttributeError):
        # A JSON header without `type`, or with lengths that are not numbers, or not an
        # object at all (the library indexes into whatever it parsed).
        raise FrameError(ErrorCode.INVALID_FRAME, "the header is not a Wyoming event") from None
    if event is not None:
        if not isinstance(event.type, str) or not isinstance(event.data, dict):
            raise FrameError(ErrorCode.INVALID_FRAME, "`type` must be a string, `data` an object")
        return event
    if reader.refused is not None:
        raise reader.refused
    if reader.at_eof():
        return None
    # Not JSON: the header line itself, or its `data_length` bytes (a wrong length).
    raise FrameError(ErrorCode.INVALID_FRAME, "the header or its data is not valid JSON")
