"""A small SSE client over httpx for the gateway tests: what a browser's EventSource sees."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class Message:
    id: str | None = None
    event: str | None = None
    data: str | None = None
    comments: list[str] = field(default_factory=list)

    @property
    def payload(self) -> dict[str, Any]:
        assert self.data is not None
        return json.loads(self.data)  # type: ignore[no-any-return]


class Stream:
    """Reads one SSE response in the background; tests pull messages with timeouts."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.queue: asyncio.Queue[Message | None] = asyncio.Queue()
        self.task = asyncio.create_task(self._read())
        self.pings = 0
        self.last_id: str | None = None
        """As EventSource keeps it: set by every `id:` field, with or without data."""
        self.ids: list[str] = []
        """Every `id:` field in the order it came."""
        self.error: httpx.HTTPError | None = None

    async def _read(self) -> None:
        current = Message()
        try:
            async for line in self.response.aiter_lines():
                if line == "":
                    if current.data is not None:
                        await self.queue.put(current)
                    elif current.comments:
                        self.pings += current.comments.count("ping")
                    current = Message()
                    continue
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "":
                    current.comments.append(value)
                elif name == "id":
                    current.id = self.last_id = value
                    self.ids.append(value)
                elif name == "event":
                    current.event = value
                elif name == "data":
                    current.data = value if current.data is None else f"{current.data}\n{value}"
        except httpx.HTTPError as exc:
            self.error = exc
        finally:
            await self.queue.put(None)  # the server ended the stream

    async def next(self, timeout: float = 10.0) -> Message:
        message = await asyncio.wait_for(self.queue.get(), timeout)
        if message is None:
            raise EOFError(f"the stream ended ({self.error or 'by the server'})")
        return message

    async def take(self, n: int, timeout: float = 10.0) -> list[Message]:
        return [await self.next(timeout) for _ in range(n)]

    async def nothing_more(self, seconds: float = 0.5) -> None:
        """Asserts no event arrives for `seconds` (pings are fine)."""
        try:
            extra = await asyncio.wait_for(self.queue.get(), seconds)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected event: {extra or f'the end ({self.error})'}")


@asynccontextmanager
async def events(
    client: httpx.AsyncClient, last_event_id: str | None = None, **headers: str
) -> AsyncIterator[Stream]:
    """`GET /api/events`; leaving the block disconnects (as a closed tab does)."""
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    # No read timeout: a quiet stream is normal (pings come every 15 s), and a test's own
    # waits bound it; a client default of a few seconds would end it under load.
    timeout = httpx.Timeout(10.0, read=None)
    async with client.stream("GET", "/api/events", headers=headers, timeout=timeout) as response:
        if response.status_code != 200:
            await response.aread()
            raise AssertionError(f"/api/events answered {response.status_code}: {response.text}")
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = Stream(response)
        try:
            yield stream
        finally:
            stream.task.cancel()
            with suppress(asyncio.CancelledError):
                await stream.task
