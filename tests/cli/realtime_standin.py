"""A local stand-in for the gateway's Realtime socket, for the faults the real one will not
make on demand: it speaks the same protocol (a real `websockets` server, real frames) and
can break on cue — refuse the handshake, answer with an `error` event, or drop the
connection mid-utterance.

It records what the client sent, so a test can check the client's half of the protocol.
"""

from __future__ import annotations

import base64
import json
import threading
import uuid
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, Self

from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.sync.server import Server, ServerConnection, serve

Fault = Literal["none", "refuse", "error", "drop"]


@dataclass
class Standin:
    fault: Fault = "none"
    after_appends: int = 5
    """For "error" and "drop": how many appends come first."""
    words: tuple[str, ...] = ("Send", " a", " message")
    """Deltas sent one per append from the second append on."""
    received: list[dict[str, Any]] = field(default_factory=list)
    headers: Headers | None = None
    path: str | None = None
    item_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    dropped: threading.Event = field(default_factory=threading.Event)
    closed: threading.Event = field(default_factory=threading.Event)
    _server: Server | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.socket.getsockname()[:2]
        return f"ws://{host}:{port}/v1/realtime"

    def kinds(self) -> list[str]:
        return [str(e.get("type")) for e in self.received]

    def pcm(self) -> bytes:
        """All appended audio, joined."""
        parts = [e["audio"] for e in self.received if e["type"] == "input_audio_buffer.append"]
        return b"".join(base64.b64decode(p) for p in parts)

    # ------------------------------------------------------------------ server

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        self.headers, self.path = request.headers, request.path
        if self.fault == "refuse":
            body = json.dumps({"code": "unauthorized", "message": "no such token"}).encode()
            return Response(
                401, "Unauthorized", Headers({"Content-Type": "application/json"}), body
            )
        return None

    def _handle(self, ws: ServerConnection) -> None:
        item = self.item_id
        appends = 0
        try:
            ws.send(json.dumps({"type": "session.created", "session": {}}))
            for raw in ws:
                event = json.loads(raw)
                self.received.append(event)
                kind = event.get("type")
                if kind == "session.update":
                    ws.send(json.dumps({"type": "session.updated", "session": event["session"]}))
                elif kind == "input_audio_buffer.append":
                    appends += 1
                    if 2 <= appends < 2 + len(self.words):
                        delta = self.words[appends - 2]
                        ws.send(json.dumps({"type": _DELTA, "item_id": item, "delta": delta}))
                    if appends == self.after_appends and self.fault == "drop":
                        self.dropped.set()
                        ws.close(1011, "going away mid-utterance")
                        return
                    if appends == self.after_appends and self.fault == "error":
                        error = {
                            "code": "audio_unavailable",
                            "message": "the audio service is down",
                        }
                        ws.send(json.dumps({"type": "error", "error": error}))
                elif kind == "input_audio_buffer.commit":
                    ws.send(json.dumps({"type": "input_audio_buffer.committed", "item_id": item}))
                elif kind == "input_audio_buffer.clear":
                    ws.send(json.dumps({"type": "input_audio_buffer.cleared"}))
        except ConnectionClosed:
            pass
        finally:
            self.closed.set()

    def __enter__(self) -> Self:
        self._server = serve(
            self._handle, "127.0.0.1", 0, process_request=self._process_request, compression=None
        )
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.shutdown()


_DELTA = "conversation.item.input_audio_transcription.delta"
