"""The gateway's event stream (`GET /api/events`, SSE) as per-recording queues of snapshots.

The gateway sends the stored transcript each time it changes (`transcript.updated`); the
CLI shows the latest one and never rebuilds state from raw bus events.

One connection is opened when the tool starts, before anything is uploaded, so a fast
transcript cannot slip past. Two more guards against losing an event:

- The first request already carries `Last-Event-ID: <now - backlog>-0`. Redis stream ids
  are millisecond timestamps, so the gateway replays this user's events from a moment
  before we connected; that covers the instant between the response headers and the
  gateway's subscription, and a reconnect resumes from the last id seen.
- Snapshots of a recording nobody watches yet are kept for a while: the transcript may
  arrive before the upload's answer has told us the recording id.

`recording.queued` (where an upload waits for a transcription worker, and a last one with
`queue: None` once a worker has it) is live-only, yet it goes the snapshots' way, into the
recording's queue and kept while nobody watches it: the gateway places an upload a moment
after accepting it, which can be before the upload's answer reaches us, and the turn
that follows the recording is the one to show its place (`desk.turn`).

Live-only events go to callbacks as they come and are not kept: `transcript.partial` (the
words while a key is held) to `on_partial` (see `desk.live`), `answer.delta` (an agent's
answer while it is written) to `on_answer`.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import httpx
from pydantic import ValidationError

from whisp_cli.desk.gateway import GatewayError, auth_headers, error_from, unreachable
from whisp_shared.views import (
    CLIENT_EVENT_ADAPTER,
    AnswerDelta,
    RecordingQueued,
    Transcript,
    TranscriptPartial,
)

BUFFERED_RECORDINGS = 256
Followed = Transcript | RecordingQueued
"""What a watched recording's queue carries: its snapshots, and its place in the queue."""
OnPartial = Callable[[TranscriptPartial], None]
OnAnswer = Callable[[AnswerDelta], None]
READ_TIMEOUT_S = 45.0  # the gateway pings every 15 s; three missed pings mean a dead link


@dataclass(frozen=True)
class SseMessage:
    event: str
    data: str
    id: str | None


def parse_sse(lines: Iterable[str]) -> Iterator[SseMessage]:
    """The text/event-stream format: `field: value` lines, a blank line ends a message."""
    event, last_id = "message", None
    data: list[str] = []
    for raw in lines:
        line = raw.rstrip("\r\n")
        if not line:
            if data:
                yield SseMessage(event, "\n".join(data), last_id)
            event, data = "message", []
            continue
        if line.startswith(":"):
            continue  # a comment: the gateway's heartbeat
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
        elif name == "id":
            last_id = value


class EventFeed:
    """A background SSE reader that routes the caller's snapshots by `recording_id`."""

    def __init__(self, base_url: str, token: str | None, *, backlog_s: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = {"Accept": "text/event-stream", **auth_headers(token)}
        self._last_id = f"{max(0, int((time.time() - backlog_s) * 1000))}-0"
        self._lock = threading.Lock()
        self._watchers: dict[str, queue.Queue[Followed]] = {}
        self._early: OrderedDict[str, list[Followed]] = OrderedDict()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._response: httpx.Response | None = None
        self.error: GatewayError | None = None
        """The last connection problem (None while connected)."""
        self.connected = False
        self.on_partial: OnPartial | None = None
        """Called (on the reader thread, briefly) with each live `transcript.partial`: words
        while a key is held. Never buffered or replayed: they matter only while fresh."""
        self.on_answer: OnAnswer | None = None
        """Called (on the reader thread, briefly) with each live `answer.delta`: the next
        piece of an agent's answer as it is written. Never buffered or replayed either."""

    def start(self, timeout_s: float = 10.0) -> None:
        """Connect and return once the stream is open; raise GatewayError if it cannot be."""
        self._thread = threading.Thread(target=self._run, name="gateway-events", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s):
            self.close()
            raise GatewayError(f"the gateway at {self.base_url} did not open its event stream")
        if not self.connected:
            error = self.error or GatewayError("the event stream failed")
            self.close()
            raise error

    def watch(self, recording_id: str) -> queue.Queue[Followed]:
        """A queue of this recording's snapshots and places in the transcription queue, in
        the order they came, including any that came before the call."""
        with self._lock:
            found: queue.Queue[Followed] = queue.Queue()
            for item in self._early.pop(recording_id, []):
                found.put(item)
            self._watchers[recording_id] = found
            return found

    def forget(self, recording_id: str) -> None:
        with self._lock:
            self._watchers.pop(recording_id, None)

    def close(self) -> None:
        self._stop.set()
        response = self._response
        if response is not None:
            # Closing from another thread may race the reader; either way it stops.
            with contextlib.suppress(Exception):
                response.close()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=0.1)  # a daemon thread: never hold up the exit

    def _partial(self, event: TranscriptPartial) -> None:
        handler = self.on_partial
        if handler is not None:
            handler(event)

    # ------------------------------------------------------------------ reader thread

    def _run(self) -> None:
        backoff = 0.5
        timeout = httpx.Timeout(10.0, read=READ_TIMEOUT_S)
        with httpx.Client(base_url=self.base_url, timeout=timeout) as client:
            while not self._stop.is_set():
                try:
                    self._read_once(client)
                    backoff = 0.5
                except GatewayError as exc:
                    self.error = exc
                except httpx.TransportError as exc:
                    self.error = unreachable(self.base_url, exc)
                except Exception as exc:  # a closed response mid-read, a parse slip
                    self.error = GatewayError(f"the event stream broke: {exc}")
                self.connected = False
                self._ready.set()  # start() reports the first failure instead of waiting
                if self._stop.wait(backoff):
                    return
                backoff = min(backoff * 2, 5.0)

    def _read_once(self, client: httpx.Client) -> None:
        headers = {**self._headers, "Last-Event-ID": self._last_id}
        with client.stream("GET", "/api/events", headers=headers) as response:
            if response.status_code >= 400:
                raise error_from(response)
            self._response = response
            self.connected, self.error = True, None
            self._ready.set()
            try:
                for message in parse_sse(response.iter_lines()):
                    if message.id:
                        self._last_id = message.id
                    self._deliver(message)
                    if self._stop.is_set():
                        return
            finally:
                self._response = None

    def _deliver(self, message: SseMessage) -> None:
        try:
            event = CLIENT_EVENT_ADAPTER.validate_json(message.data)
        except ValidationError:
            return  # an event type this CLI does not know yet
        if isinstance(event, TranscriptPartial):
            self._partial(event)
            return
        if isinstance(event, AnswerDelta):
            if (on_answer := self.on_answer) is not None:
                on_answer(event)
            return
        if isinstance(event, RecordingQueued):
            self._route(event.recording_id, event)
        else:
            self._route(event.transcript.recording_id, event.transcript)

    def _route(self, recording_id: str, item: Followed) -> None:
        """To the recording's watcher, or kept until one watches it (the oldest dropped)."""
        with self._lock:
            watcher = self._watchers.get(recording_id)
            if watcher is not None:
                watcher.put(item)
                return
            self._early.setdefault(recording_id, []).append(item)
            while len(self._early) > BUFFERED_RECORDINGS:
                self._early.popitem(last=False)
