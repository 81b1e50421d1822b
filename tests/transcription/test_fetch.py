"""`AudioFetcher` over real HTTP: the headers it presents to the audio service, and how each
answer becomes a stable error. (The bus-level failure paths are in test_consumer_failures.)"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from pydantic import SecretStr

from whisp_shared.caller import USER_HEADER
from whisp_shared.errors import WhispError
from whisp_transcription.errors import (
    AudioFetchRefused,
    AudioNotFound,
    AudioTooLarge,
    AudioUnavailable,
)
from whisp_transcription.fetch import AudioFetcher


@dataclass
class AudioServer:
    """Answers every GET with `status` and `body`, recording the request headers."""

    url: str = ""
    status: int = 200
    body: bytes = b"RIFF-audio-bytes"
    seen: list[dict[str, str]] = field(default_factory=list)


@pytest.fixture
def audio_server() -> Iterator[AudioServer]:
    server = AudioServer()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            server.seen.append({k.lower(): v for k, v in self.headers.items()})
            self.send_response(server.status)
            self.send_header("Content-Length", str(len(server.body)))
            self.end_headers()
            self.wfile.write(server.body)

        def log_message(self, *_args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.url = f"http://127.0.0.1:{httpd.server_port}/audio/r1"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield server
    httpd.shutdown()
    httpd.server_close()


async def fetch(uri: str, token: SecretStr | None = None, max_bytes: int = 1 << 20) -> bytes:
    fetcher = AudioFetcher(None, max_bytes, timeout_s=5.0, token=token)
    try:
        return await fetcher.fetch(uri)
    finally:
        await fetcher.aclose()


async def test_presents_the_service_token_and_no_user(audio_server: AudioServer) -> None:
    assert await fetch(audio_server.url, SecretStr("svc-token-1")) == audio_server.body
    [headers] = audio_server.seen
    assert headers["authorization"] == "Bearer svc-token-1"
    assert USER_HEADER.lower() not in headers  # a trusted service, acting for no one user


async def test_without_a_token_sends_no_authorization(audio_server: AudioServer) -> None:
    await fetch(audio_server.url)
    [headers] = audio_server.seen
    assert "authorization" not in headers


@pytest.mark.parametrize(
    ("status", "error", "retryable"),
    [
        (404, AudioNotFound, False),
        (503, AudioUnavailable, True),
        (429, AudioUnavailable, True),
        (403, AudioFetchRefused, False),
    ],
)
async def test_each_answer_becomes_its_error(
    audio_server: AudioServer, status: int, error: type[WhispError], retryable: bool
) -> None:
    audio_server.status = status
    with pytest.raises(error) as caught:
        await fetch(audio_server.url)
    assert caught.value.retryable is retryable


async def test_a_body_over_the_limit_is_refused(audio_server: AudioServer) -> None:
    audio_server.body = b"x" * 4096
    with pytest.raises(AudioTooLarge):
        await fetch(audio_server.url, max_bytes=1024)
