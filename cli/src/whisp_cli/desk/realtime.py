"""One press streamed over the gateway's Realtime transcription socket (OpenAI's protocol).

`/v1/realtime?intent=transcription`, push-to-talk: `session.update` (16 kHz PCM16, no turn
detection), `input_audio_buffer.append` every ~100 ms while the key is held, `commit` on
release (answered by `input_audio_buffer.committed {item_id}`: the recording's id, which
the turn then follows like an upload's), `clear` to cancel. While held the server sends
`…transcription.delta` pieces of settled text.

A socket per press: it opens while the first audio is already being kept, so nothing is
lost to the handshake, and a press never inherits a half-broken link from the last one.
Two threads per press: one connects and sends (audio blocks are converted to PCM there,
never on the audio thread), one reads. Anything that goes wrong (no socket, a refusal, an
`error` event, a close before `committed`) marks the stream broken with a sentence saying
why; the caller then uploads the press's audio, which the recorder kept in full.
"""

from __future__ import annotations

import base64
import contextlib
import json
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, Literal
from urllib.parse import urlencode, urlsplit, urlunsplit

import numpy as np
import numpy.typing as npt
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException
from websockets.sync.client import ClientConnection, connect

from whisp_cli.desk.gateway import auth_headers
from whisp_cli.desk.pcm import PcmChunker
from whisp_cli.desk.settings import CliSettings
from whisp_shared.audio import TARGET_RATE
from whisp_shared.options import RecordingOptions

REALTIME_PATH = "/v1/realtime"
CONNECT_TIMEOUT_S = 3.0
CLOSE_TIMEOUT_S = 1.0
DELTA = "conversation.item.input_audio_transcription.delta"
COMMITTED = "input_audio_buffer.committed"

OnDelta = Callable[[str, str], None]
"""(item_id, settled text to append)."""
OnItem = Callable[[str], None]
"""The server named the press's item (its recording id)."""


class StreamBroken(Exception):
    """The press cannot be streamed (any more); `str()` says why, in a few words."""


def realtime_url(gateway_url: str, override: str | None, options: RecordingOptions) -> str:
    """The socket's address: `override` (`cli.realtime_url`) or the gateway's own, with the
    intent and the agent route on the query, as the web page sends them."""
    if override:
        base = override.rstrip("/")
    else:
        parts = urlsplit(gateway_url.rstrip("/"))
        scheme = "wss" if parts.scheme == "https" else "ws"
        base = urlunsplit((scheme, parts.netloc, parts.path + REALTIME_PATH, "", ""))
    query: dict[str, str] = {"intent": "transcription"}
    if options.pipeline:
        query["pipeline"] = options.pipeline
    elif options.agent_id:
        query["agent_id"] = options.agent_id
    return f"{base}?{urlencode(query)}"


def can_stream(options: RecordingOptions) -> str | None:
    """Why these options need an upload (None: the socket carries them all)."""
    if options.session_id:
        return "the Realtime socket carries no agent session"
    if options.word_timestamps:
        return "the Realtime socket gives no word timestamps"
    return None


def stream_target(
    settings: CliSettings, gateway_url: str, options: RecordingOptions, stream: bool | None
) -> tuple[str | None, str | None]:
    """(the Realtime socket to stream presses to, or None; a note saying why not, if the
    person asked for streaming but these options cannot be streamed)."""
    if not (settings.stream if stream is None else stream):
        return None, None
    if (reason := can_stream(options)) is not None:
        return None, f"{reason}, so each clip is uploaded after release"
    return realtime_url(gateway_url, settings.realtime_url, options), None


def session_update(options: RecordingOptions) -> dict[str, Any]:
    transcription = {
        k: v for k, v in (("language", options.language), ("prompt", options.prompt)) if v
    }
    audio_input = {
        "format": {"type": "audio/pcm", "rate": TARGET_RATE},
        "transcription": transcription,
        "turn_detection": None,
    }
    return {
        "type": "session.update",
        "session": {"type": "transcription", "audio": {"input": audio_input}},
    }


Order = tuple[Literal["audio"], npt.NDArray[np.float32]] | tuple[Literal["commit", "clear"], None]


class RealtimeStream:
    """The socket side of one press: `begin(rate)`, `feed(block)`… then `commit()` (the item
    id) or `cancel()`."""

    def __init__(
        self,
        url: str,
        token: str | None,
        options: RecordingOptions,
        *,
        on_delta: OnDelta = lambda _item, _text: None,
        on_item: OnItem = lambda _item: None,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
    ) -> None:
        self.url = url
        self._headers = auth_headers(token)
        self._options = options
        self._on_delta = on_delta
        self._on_item = on_item
        self._connect_timeout_s = connect_timeout_s
        self._orders: queue.Queue[Order] = queue.Queue()
        self._lock = threading.Lock()
        self._ws: ClientConnection | None = None
        self._sender: threading.Thread | None = None
        self._rate = TARGET_RATE
        self._commit_sent = False
        self._ended_by_server = False
        self._cleared = threading.Event()
        self.committed = threading.Event()
        """Set once the server confirmed the press's item (`item_id` is then known)."""
        self.broken = threading.Event()
        self.error: str | None = None
        """Why the stream broke (None while it is fine)."""
        self.item_id: str | None = None
        self.appended_bytes = 0

    # ------------------------------------------------------------------ the press's side

    def begin(self, rate: int) -> None:
        """The device is open at `rate`: connect (on a thread) and stream what comes."""
        self._rate = rate
        self._sender = threading.Thread(target=self._send_loop, name="realtime-send", daemon=True)
        self._sender.start()

    def feed(self, block: npt.NDArray[np.float32]) -> None:
        """A block the recorder kept (audio thread: only queues it)."""
        if not self.broken.is_set() and not self._ended_by_server:
            self._orders.put(("audio", block))

    def commit(self, timeout_s: float) -> str:
        """Released: send the rest and commit; the item id once the server confirms it.
        Raises StreamBroken (the stream is then closed, and the server drops the item)."""
        self._orders.put(("commit", None))
        if self._wait_committed(timeout_s):
            assert self.item_id is not None
            return self.item_id
        self._break(self.error or f"the gateway did not confirm the commit in {timeout_s:.0f} s")
        raise StreamBroken(self.error)

    def cancel(self, wait_s: float = 0.0) -> None:
        """Dropped (ESC, too short, shutting down): `clear`, then close. Waits up to `wait_s`
        for that to be done (a process about to exit); by default returns at once."""
        self._orders.put(("clear", None))
        sender = self._sender
        if wait_s > 0 and sender is not None:
            sender.join(wait_s)

    def _wait_committed(self, timeout_s: float) -> bool:
        """Until `committed`, the stream breaking, or the timeout (True: committed)."""
        deadline = time.monotonic() + timeout_s
        while not self.committed.wait(min(0.05, max(0.0, deadline - time.monotonic()))):
            if self.broken.is_set() or time.monotonic() >= deadline:
                return self.committed.is_set()
        return True

    # ------------------------------------------------------------------ sending thread

    def _send_loop(self) -> None:
        ws = self._connect()
        if ws is None:
            return
        chunker = PcmChunker(self._rate)
        try:
            ws.send(json.dumps(session_update(self._options)))
            while not self.broken.is_set():
                kind, block = self._orders.get()
                if self.broken.is_set():
                    return
                if kind == "audio":
                    assert block is not None
                    if not self._ended_by_server:
                        self._append(ws, chunker.feed(block))
                elif kind == "commit":
                    if not self._ended_by_server:
                        self._append(ws, chunker.flush())
                        self._commit_sent = True
                        ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
                    self._wait_committed(30.0)  # then the socket has done its job
                    return
                else:
                    ws.send(json.dumps({"type": "input_audio_buffer.clear"}))
                    self._cleared.wait(CLOSE_TIMEOUT_S)  # the server has dropped the item
                    return
        except ConnectionClosed as exc:
            self._break(f"the gateway closed the stream ({_close_reason(exc)})")
        except (OSError, WebSocketException) as exc:
            self._break(f"the stream failed ({type(exc).__name__}: {exc})")
        finally:
            self._close(ws)

    def _connect(self) -> ClientConnection | None:
        try:
            ws = connect(
                self.url,
                additional_headers=self._headers,
                open_timeout=self._connect_timeout_s,
                close_timeout=CLOSE_TIMEOUT_S,
                compression=None,  # base64 PCM barely compresses; spare the CPU
                max_size=1 << 20,
            )
        except InvalidStatus as exc:
            self._break(_refusal(exc))
            return None
        except (OSError, TimeoutError, WebSocketException) as exc:
            self._break(f"cannot open the stream at {self.url} ({type(exc).__name__})")
            return None
        with self._lock:
            self._ws = ws
            if self.broken.is_set():  # broken (timed out) while connecting
                ws.close()
                return None
        threading.Thread(
            target=self._read_loop, args=(ws,), name="realtime-read", daemon=True
        ).start()
        return ws

    def _append(self, ws: ClientConnection, chunks: list[bytes]) -> None:
        for chunk in chunks:
            audio = base64.b64encode(chunk).decode("ascii")
            ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": audio}))
            self.appended_bytes += len(chunk)

    # ------------------------------------------------------------------ reading thread

    def _read_loop(self, ws: ClientConnection) -> None:
        try:
            for message in ws:
                self._handle(json.loads(message))
        except ConnectionClosed as exc:
            if not self.committed.is_set():
                self._break(f"the gateway closed the stream ({_close_reason(exc)})")
        except (OSError, ValueError, WebSocketException) as exc:
            if not self.committed.is_set():
                self._break(f"the stream failed ({type(exc).__name__})")
        else:
            if not self.committed.is_set():
                self._break("the gateway closed the stream")

    def _handle(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == DELTA:
            item, text = str(event.get("item_id") or ""), str(event.get("delta") or "")
            if item and text:
                self._on_delta(item, text)
        elif kind == COMMITTED and self.item_id is None:
            self.item_id = str(event["item_id"])
            if not self._commit_sent:
                # The server ended the item itself (its maximum length): audio from here on
                # would open a second one, so the press's stream stops at this point.
                self._ended_by_server = True
            self._on_item(self.item_id)
            self.committed.set()
        elif kind == "input_audio_buffer.cleared":
            self._cleared.set()
        elif kind == "error" and not self.committed.is_set():
            error = event.get("error") or {}
            message = error.get("message") or "an error"
            self._break(f"the gateway's stream reported: {message} ({error.get('code')})")

    # ------------------------------------------------------------------ ending

    def _break(self, reason: str) -> None:
        with self._lock:
            if self.error is None:
                self.error = reason
            self.broken.set()
            ws = self._ws
        if ws is not None:
            self._close(ws)
        self._orders.put(("clear", None))  # wake the sender so it ends

    def _close(self, ws: ClientConnection) -> None:
        with contextlib.suppress(OSError, WebSocketException):  # a dead link: nothing to add
            ws.close()


def _close_reason(exc: ConnectionClosed) -> str:
    close = exc.rcvd
    if close is None:
        return "no close frame"
    return f"code {close.code}" + (f": {close.reason}" if close.reason else "")


def _refusal(exc: InvalidStatus) -> str:
    response = exc.response
    try:
        body = json.loads(response.body or b"{}")
    except ValueError:
        body = {}
    message = body.get("message") if isinstance(body, dict) else None
    detail = f": {message}" if message else ""
    return f"the gateway refused the stream (HTTP {response.status_code}{detail})"
