"""A local stand-in for an OpenAI-compatible server: `/v1/chat/completions` over real HTTP.

Each request takes the next scripted `Reply` (then `default`); every request is recorded, so
tests can count how many were really sent, and read what the client sent back (the `tool`
messages answering a reply's `tool_calls`: `Seen.tool_results`). Streams are sent as the
real protocol does (`data: {chunk}` lines, a usage chunk, `data: [DONE]`); a reply's tool
calls go out in OpenAI's wire shape, whole in `message.tool_calls` or, streamed, as
`delta.tool_calls` pieces by `index` with the arguments split across chunks (as OpenAI
does), so the client's reassembly is exercised too.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class ToolCall:
    """One function call the model asks for (`arguments` as the model would send them)."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    id: str = ""

    def wire(self, index: int) -> dict[str, Any]:
        return {
            "id": self.id or f"call_{index}_{self.name}",
            "type": "function",
            "function": {"name": self.name, "arguments": json.dumps(self.arguments)},
        }


@dataclass
class Reply:
    status: int = 200
    text: str | None = "ok"
    """The assistant's answer (status 200); None with `body` for a raw body."""
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    word_delay_s: float = 0.0
    """In a stream: the pause before each word (a model writing slowly)."""
    prompt_tokens: int = 11
    completion_tokens: int = 7
    tool_calls: list[ToolCall] = field(default_factory=list)
    """Calls the model asks for (`finish_reason: "tool_calls"`); `text` may go with them."""
    stream_usage: bool = True
    """False: a stream without the usage chunk (llama.cpp's own server sends none)."""

    @property
    def raw(self) -> bool:
        return self.text is None and not self.tool_calls


def calls(*tool_calls: ToolCall, prompt_tokens: int = 11, completion_tokens: int = 7) -> Reply:
    """A reply that only calls tools (no text), as models mostly do."""
    return Reply(
        text=None,
        tool_calls=list(tool_calls),
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
    )


def error(status: int, message: str, **headers: str) -> Reply:
    body = json.dumps({"error": {"message": message, "type": "stub", "code": None}}).encode()
    return Reply(status=status, text=None, body=body, headers=headers)


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    at: float

    @property
    def messages(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = self.body.get("messages") or []
        return messages

    def tool_results(self) -> dict[str, str]:
        """What the client sent back for each tool call, by the called function's name (the
        `tool` message answering it, matched through the assistant message's call ids)."""
        names = {
            call["id"]: call["function"]["name"]
            for message in self.messages
            for call in message.get("tool_calls") or ()
        }
        return {
            names[m["tool_call_id"]]: m["content"]
            for m in self.messages
            if m.get("role") == "tool" and m.get("tool_call_id") in names
        }


class ChatStub:
    def __init__(self, default: Reply | None = None) -> None:
        self.script: deque[Reply] = deque()
        self.default = default or Reply()
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self._send(
                    200,
                    json.dumps(
                        {
                            "object": "list",
                            "data": [{"id": "stub-model", "object": "model", "owned_by": "stub"}],
                        }
                    ).encode(),
                )

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                body = json.loads(raw or b"{}")
                with stub._lock:
                    stub.seen.append(Seen(self.path, dict(self.headers), body, time.monotonic()))
                    reply = stub.script.popleft() if stub.script else stub.default
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                if reply.raw:
                    self._send(reply.status, reply.body or b"", reply.headers)
                elif body.get("stream"):
                    self._stream(reply, body)
                else:
                    self._send(
                        reply.status, json.dumps(_completion(reply, body)).encode(), reply.headers
                    )

            def _send(
                self,
                status: int,
                data: bytes,
                headers: dict[str, str] | None = None,
                content_type: str = "application/json",
            ) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, reply: Reply, body: dict[str, Any]) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                deltas = _stream_deltas(reply)
                deltas[0] = {"role": "assistant", **deltas[0]}
                for delta in deltas:
                    if reply.word_delay_s and "content" in delta:
                        time.sleep(reply.word_delay_s)
                    self._chunk(body, delta)
                self._chunk(body, {}, finish=_finish_reason(reply))
                if reply.stream_usage:
                    self._line(
                        {
                            "id": "chatcmpl-stub",
                            "object": "chat.completion.chunk",
                            "created": 0,
                            "model": body.get("model"),
                            "choices": [],
                            "usage": _usage(reply),
                        }
                    )
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()
                self.close_connection = True

            def _chunk(
                self, body: dict[str, Any], delta: dict[str, Any], finish: str | None = None
            ) -> None:
                self._line(
                    {
                        "id": "chatcmpl-stub",
                        "object": "chat.completion.chunk",
                        "created": 0,
                        "model": body.get("model"),
                        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                    }
                )

            def _line(self, obj: dict[str, Any]) -> None:
                self.wfile.write(f"data: {json.dumps(obj)}\n\n".encode())
                self.wfile.flush()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def push(self, *replies: Reply) -> None:
        self.script.extend(replies)

    @property
    def completions(self) -> list[Seen]:
        return [s for s in self.seen if s.path.endswith("/chat/completions")]

    def __enter__(self) -> ChatStub:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _stream_deltas(reply: Reply) -> list[dict[str, Any]]:
    """The text word by word, then each tool call: its id, type and name first, then its
    arguments in pieces (a client must join them by `index`)."""
    deltas: list[dict[str, Any]] = []
    if reply.text is not None:
        words = reply.text.split(" ")
        deltas += [{"content": w if i == 0 else " " + w} for i, w in enumerate(words)]
    for index, call in enumerate(reply.tool_calls):
        wire = call.wire(index)
        arguments = wire["function"]["arguments"]
        head = {**wire, "function": {"name": wire["function"]["name"], "arguments": ""}}
        deltas.append({"tool_calls": [{"index": index, **head}]})
        step = max(1, len(arguments) // 3)
        for start in range(0, len(arguments), step):
            piece = {"index": index, "function": {"arguments": arguments[start : start + step]}}
            deltas.append({"tool_calls": [piece]})
    return deltas


def _finish_reason(reply: Reply) -> str:
    return "tool_calls" if reply.tool_calls else "stop"


def _completion(reply: Reply, body: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.text}
    if reply.tool_calls:
        message["tool_calls"] = [call.wire(i) for i, call in enumerate(reply.tool_calls)]
    return {
        "id": "chatcmpl-stub",
        "object": "chat.completion",
        "created": 0,
        "model": body.get("model"),
        "choices": [
            {
                "index": 0,
                "finish_reason": _finish_reason(reply),
                "message": message,
            }
        ],
        "usage": _usage(reply),
    }


def _usage(reply: Reply) -> dict[str, int]:
    return {
        "prompt_tokens": reply.prompt_tokens,
        "completion_tokens": reply.completion_tokens,
        "total_tokens": reply.prompt_tokens + reply.completion_tokens,
    }
