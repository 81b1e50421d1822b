"""A real local HTTP server speaking OpenAI's `POST /v1/audio/transcriptions`.

The engine's tests talk to it through the real `openai` SDK over real sockets, so they
exercise what production does: multipart uploads, status codes, Retry-After headers,
slow responses and broken bodies. Every request is recorded (headers, form fields,
file) and replies follow a script the test sets; when the script runs out, `then`
answers (by default a verbose_json transcription shaped like OpenAI's).
"""

from __future__ import annotations

import copy
import json
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

VERBOSE_JSON: dict[str, Any] = {
    "task": "transcribe",
    "language": "english",
    "duration": 2.5,
    "text": " Hello world. How are you?",
    "segments": [
        {"id": 0, "seek": 0, "start": 0.0, "end": 1.2, "text": " Hello world.",
         "tokens": [50364, 2425, 1002, 13, 50424], "temperature": 0.0, "avg_logprob": -0.21,
         "compression_ratio": 0.79, "no_speech_prob": 0.012},
        {"id": 1, "seek": 0, "start": 1.2, "end": 2.5, "text": " How are you?",
         "tokens": [50424, 1012, 366, 291, 30, 50489], "temperature": 0.0, "avg_logprob": -0.18,
         "compression_ratio": 0.75, "no_speech_prob": 0.008},
    ],
    "words": [
        {"word": "Hello", "start": 0.0, "end": 0.48},
        {"word": "world", "start": 0.48, "end": 1.2},
        {"word": "How", "start": 1.2, "end": 1.5},  # starts exactly where segment 0 ends
        {"word": "are", "start": 1.5, "end": 1.86},
        {"word": "you", "start": 1.86, "end": 2.5},
    ],
    "usage": {"type": "duration", "seconds": 3},
}  # fmt: skip


@dataclass
class Reply:
    """One scripted answer. `json` and `body` both None: a status-appropriate default."""

    status: int = 200
    json: Any = None
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    """Sleep before answering (longer than the client's timeout: a timeout)."""

    @classmethod
    def error(
        cls,
        status: int,
        message: str,
        *,
        error_type: str = "invalid_request_error",
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        """OpenAI's error shape: `{"error": {"message", "type", "param", "code"}}`."""
        error = {"message": message, "type": error_type, "param": None, "code": code}
        return cls(status, json={"error": error}, headers=headers or {})


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    """Lower-cased names."""
    fields: dict[str, list[str]]
    """Form fields other than the file; repeated ones (`timestamp_granularities[]`) in order."""
    file_name: str | None = None
    file_type: str | None = None
    file: bytes = b""

    def field(self, name: str) -> str | None:
        values = self.fields.get(name)
        return values[0] if values else None


class OpenAIStub:
    """`with OpenAIStub() as stub:` serves on 127.0.0.1 (a free port) in a daemon thread."""

    def __init__(self) -> None:
        self._server = _Server(self)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._lock = threading.Lock()
        self.requests: list[Received] = []
        self._script: list[Reply] = []
        self._then = Reply()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def reset(self, *script: Reply, then: Reply | None = None) -> None:
        """Forget past requests; answer with `script` in order, then `then` forever."""
        with self._lock:
            self.requests.clear()
            self._script = list(script)
            self._then = then or Reply()

    def __enter__(self) -> OpenAIStub:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _receive(self, received: Received) -> Reply:
        with self._lock:
            self.requests.append(received)
            return self._script.pop(0) if self._script else self._then


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # a handler still sleeping past a client timeout must not block

    def __init__(self, stub: OpenAIStub) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.stub = stub


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like api.openai.com
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read `stub.requests`, not stderr."""

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _handle(self) -> None:
        received = _parse(self.command, self.path, dict(self.headers.items()), self._body())
        reply = self.server.stub._receive(received)
        time.sleep(reply.delay_s)
        status, headers, payload = _render(reply, received)
        try:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("x-request-id", f"req_stub_{id(received):x}")
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
            self.close_connection = True

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))
        chunks = []
        while size := int(self.rfile.readline().split(b";")[0], 16):
            chunks.append(self.rfile.read(size))
            self.rfile.readline()
        self.rfile.readline()
        return b"".join(chunks)


def _parse(method: str, path: str, headers: dict[str, str], body: bytes) -> Received:
    """Read multipart/form-data the way OpenAI does: a `file` part plus text fields."""
    received = Received(method, path, {k.lower(): v for k, v in headers.items()}, {})
    content_type = received.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        return received
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
    )
    assert isinstance(message, EmailMessage)
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        assert isinstance(name, str) and isinstance(payload, bytes), part
        if name == "file":
            received.file_name = part.get_filename()
            received.file_type = part.get_content_type()
            received.file = payload
        else:
            received.fields.setdefault(name, []).append(payload.decode())
    return received


def _render(reply: Reply, received: Received) -> tuple[int, dict[str, str], bytes]:
    headers = {"Content-Type": "application/json", **reply.headers}
    if reply.body is not None:
        return reply.status, headers, reply.body
    data = reply.json
    if data is None and reply.status == 200:
        data = _default_transcription(received)
    elif data is None:
        data = {"error": {"message": f"stub error {reply.status}", "type": "server_error",
                          "param": None, "code": None}}  # fmt: skip
    return reply.status, headers, json.dumps(data).encode()


def _default_transcription(received: Received) -> dict[str, Any]:
    """Like OpenAI: `words`/`segments` only for the granularities that were asked for."""
    data = copy.deepcopy(VERBOSE_JSON)
    granularities = received.fields.get("timestamp_granularities[]") or ["segment"]
    for key, granularity in (("words", "word"), ("segments", "segment")):
        if granularity not in granularities:
            del data[key]
    return data
