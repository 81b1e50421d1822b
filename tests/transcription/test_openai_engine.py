"""The `openai` engine against a real local server speaking OpenAI's transcription protocol.

Nothing is mocked below the SDK: requests cross a socket, so retries, Retry-After waits,
timeouts and the multipart form are what production would send and see.
"""

from __future__ import annotations

import io
import logging
import socket
import time
import wave
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import structlog
from pydantic import SecretStr

from tests.transcription.openai_stub import OpenAIStub, Reply
from whisp_shared.config import LoggingSettings
from whisp_shared.logs import configure_logging
from whisp_shared.upstream import (
    UpstreamAuth,
    UpstreamBadRequest,
    UpstreamBadResponse,
    UpstreamRateLimited,
    UpstreamUnavailable,
)
from whisp_transcription.engines.base import SAMPLE_RATE, Clip, TranscribeOptions
from whisp_transcription.engines.openai_engine import OpenAIEngine
from whisp_transcription.errors import EngineNotConfigured
from whisp_transcription.settings import OpenAISettings

KEY = "sk-test-d0n0tl0gme-7f3a9c1e5b"


@pytest.fixture(scope="module")
def openai_server() -> Iterator[OpenAIStub]:
    with OpenAIStub() as server:
        yield server


@pytest.fixture
def stub(openai_server: OpenAIStub) -> OpenAIStub:
    openai_server.reset()
    return openai_server


def engine_for(stub: OpenAIStub, key: str | None = KEY, **settings: Any) -> OpenAIEngine:
    """Small backoffs so failure paths take fractions of a second."""
    values: dict[str, Any] = {"timeout_s": 5.0, "max_attempts": 3, "max_backoff_s": 0.05}
    values |= settings
    return OpenAIEngine(
        OpenAISettings(base_url=stub.base_url, **values), SecretStr(key) if key else None
    )


def make_clip(content_type: str = "audio/wav", filename: str = "clip") -> Clip:
    """One second of a 440 Hz tone as a real 16 kHz mono WAV file."""
    t = np.arange(SAMPLE_RATE, dtype=np.float32) / SAMPLE_RATE
    samples = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE)
        wav.writeframes((samples * 32767).astype("<i2").tobytes())
    return Clip(samples, buffer.getvalue(), content_type, filename)


async def test_success_maps_words_segments_and_sends_openai_form(stub: OpenAIStub) -> None:
    clip = make_clip()
    options = TranscribeOptions(
        language="en", prompt="WhisPTT, Redis", word_timestamps=True, temperature=0.2
    )
    result = await engine_for(stub).transcribe(clip, options)

    assert result.text == "Hello world. How are you?"
    assert result.language == "en"
    assert [(s.start, s.end, s.text) for s in result.segments] == [
        (0.0, 1.2, "Hello world."),
        (1.2, 2.5, "How are you?"),
    ]
    # "How" starts exactly where segment 0 ends: it still belongs to segment 1.
    assert [[w.word for w in s.words or []] for s in result.segments] == [
        ["Hello", "world"],
        ["How", "are", "you"],
    ]
    assert result.segments[1].words is not None
    assert (result.segments[1].words[0].start, result.segments[1].words[0].end) == (1.2, 1.5)

    [request] = stub.requests
    assert (request.method, request.path) == ("POST", "/v1/audio/transcriptions")
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.file_name == "clip.wav" and request.file_type == "audio/wav"
    assert request.file == clip.original
    assert request.field("model") == "whisper-1"
    assert request.field("response_format") == "verbose_json"
    assert request.field("language") == "en"
    assert request.field("prompt") == "WhisPTT, Redis"
    assert float(request.field("temperature") or "nan") == 0.2
    assert request.fields["timestamp_granularities[]"] == ["word", "segment"]


async def test_segments_only_and_language_name_becomes_iso_code(stub: OpenAIStub) -> None:
    """No word request: no words asked or returned; unset fields are not sent at all."""
    clip = make_clip("audio/webm;codecs=opus", filename="audio")
    result = await engine_for(stub, model="whisper-large-v3").transcribe(clip, TranscribeOptions())

    assert result.language == "en"  # verbose_json said "english"
    assert [s.words for s in result.segments] == [None, None]
    [request] = stub.requests
    assert request.fields["timestamp_granularities[]"] == ["segment"]
    assert request.field("model") == "whisper-large-v3"
    assert "language" not in request.fields and "prompt" not in request.fields
    assert request.file_name == "audio.webm"


async def test_429_waits_retry_after_then_succeeds(stub: OpenAIStub) -> None:
    stub.reset(Reply.error(429, "Rate limit reached", headers={"Retry-After": "1"}))
    engine = engine_for(stub, max_backoff_s=5.0)

    started = time.monotonic()
    result = await engine.transcribe(make_clip(), TranscribeOptions())
    elapsed = time.monotonic() - started

    assert result.text == "Hello world. How are you?"
    assert len(stub.requests) == 2
    assert 0.95 <= elapsed < 1.45  # Retry-After exactly, not backoff (0.5-1 s here) on top


@pytest.mark.parametrize(
    ("headers", "max_backoff_s", "low", "high"),
    [
        # ms wins over seconds, and is used as is (backoff would wait >= 0.5 s)
        ({"retry-after-ms": "300", "Retry-After": "2"}, 5.0, 0.28, 0.48),
        ({"Retry-After": "30"}, 0.3, 0.28, 2.0),  # capped by max_backoff_s
    ],
)
async def test_retry_after_ms_and_cap(
    stub: OpenAIStub, headers: dict[str, str], max_backoff_s: float, low: float, high: float
) -> None:
    stub.reset(Reply.error(429, "slow down", headers=headers))
    started = time.monotonic()
    await engine_for(stub, max_backoff_s=max_backoff_s).transcribe(make_clip(), TranscribeOptions())
    assert low <= time.monotonic() - started < high
    assert len(stub.requests) == 2


async def test_429_forever_gives_up_after_max_attempts(stub: OpenAIStub) -> None:
    stub.reset(then=Reply.error(429, "Rate limit reached for whisper-1", code="rate_limit_exceeded",
                                headers={"Retry-After": "0"}))  # fmt: skip
    with pytest.raises(UpstreamRateLimited) as caught:
        await engine_for(stub, max_attempts=4).transcribe(make_clip(), TranscribeOptions())

    error = caught.value
    assert (error.code, error.retryable) == ("upstream_rate_limited", True)
    assert "429" in error.message and "4 attempts" in error.message
    assert "Rate limit reached for whisper-1" in error.message
    assert len(stub.requests) == 4  # the SDK's own retries are off: ours are the only ones


async def test_500_then_success(stub: OpenAIStub) -> None:
    stub.reset(Reply.error(500, "The server had an error", error_type="server_error"))
    result = await engine_for(stub).transcribe(make_clip(), TranscribeOptions())
    assert result.text == "Hello world. How are you?"
    assert len(stub.requests) == 2


async def test_5xx_forever_is_upstream_unavailable(stub: OpenAIStub) -> None:
    stub.reset(then=Reply(503, body=b"<html>Service Unavailable</html>",
                          headers={"Content-Type": "text/html"}))  # fmt: skip
    with pytest.raises(UpstreamUnavailable) as caught:
        await engine_for(stub, max_attempts=3).transcribe(make_clip(), TranscribeOptions())
    assert (caught.value.code, caught.value.retryable) == ("upstream_unavailable", True)
    assert "503" in caught.value.message and "3 attempts" in caught.value.message
    assert len(stub.requests) == 3


async def test_timeout_is_retried(stub: OpenAIStub) -> None:
    stub.reset(Reply(delay_s=1.5))  # first answer comes after the client gave up
    started = time.monotonic()
    result = await engine_for(stub, timeout_s=0.5).transcribe(make_clip(), TranscribeOptions())
    elapsed = time.monotonic() - started

    assert result.text == "Hello world. How are you?"
    assert len(stub.requests) == 2
    assert 0.45 <= elapsed < 1.4  # one timeout, not the server's whole delay


async def test_timeouts_forever_are_upstream_unavailable(stub: OpenAIStub) -> None:
    stub.reset(then=Reply(delay_s=1.0))
    with pytest.raises(UpstreamUnavailable) as caught:
        await engine_for(stub, timeout_s=0.3, max_attempts=2).transcribe(
            make_clip(), TranscribeOptions()
        )
    assert caught.value.code == "upstream_unavailable"
    assert "timed out" in caught.value.message and "2 attempts" in caught.value.message
    assert len(stub.requests) == 2


async def test_connection_refused_is_retried_then_unavailable(stub: OpenAIStub) -> None:
    with socket.socket() as sock:  # a port nothing listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    engine = OpenAIEngine(
        OpenAISettings(base_url=f"http://127.0.0.1:{port}/v1", max_attempts=2, max_backoff_s=0.05),
        SecretStr(KEY),
    )
    with pytest.raises(UpstreamUnavailable) as caught:
        await engine.transcribe(make_clip(), TranscribeOptions())
    assert caught.value.code == "upstream_unavailable"
    assert "unreachable" in caught.value.message and "2 attempts" in caught.value.message


@pytest.mark.parametrize("status", [401, 403])
async def test_auth_failure_is_permanent_after_one_request(stub: OpenAIStub, status: int) -> None:
    stub.reset(then=Reply.error(status, f"Incorrect API key provided: {KEY}.",
                                code="invalid_api_key"))  # fmt: skip
    with pytest.raises(UpstreamAuth) as caught:
        await engine_for(stub).transcribe(make_clip(), TranscribeOptions())

    error = caught.value
    assert (error.code, error.retryable) == ("upstream_auth", False)
    assert "OPENAI_API_KEY" in error.message
    assert KEY not in error.message  # the server echoed it; we must not pass it on
    assert len(stub.requests) == 1


@pytest.mark.parametrize("status", [400, 404, 413, 415, 422])
async def test_bad_request_is_permanent_with_server_message(stub: OpenAIStub, status: int) -> None:
    said = "Invalid file format. Supported formats: ['flac', 'm4a', 'mp3', 'wav', 'webm']"
    stub.reset(then=Reply.error(status, said))
    with pytest.raises(UpstreamBadRequest) as caught:
        await engine_for(stub).transcribe(make_clip(), TranscribeOptions())

    assert (caught.value.code, caught.value.retryable) == ("upstream_bad_request", False)
    assert said in caught.value.message and str(status) in caught.value.message
    assert len(stub.requests) == 1


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"<html><body>Welcome to nginx!</body></html>", "text/html"),
        (b'{"text": "truncated', "application/json"),
        (b'{"result": "no text field"}', "application/json"),
        (b'{"text": "hi", "segments": [{"start": "soon", "end": 1, "text": "hi"}]}',
         "application/json"),
    ],
)  # fmt: skip
async def test_malformed_200_is_upstream_bad_response(
    stub: OpenAIStub, body: bytes, content_type: str
) -> None:
    stub.reset(then=Reply(200, body=body, headers={"Content-Type": content_type}))
    with pytest.raises(UpstreamBadResponse) as caught:
        await engine_for(stub).transcribe(make_clip(), TranscribeOptions())
    assert caught.value.code == "upstream_bad_response"
    assert len(stub.requests) == 1


@pytest.mark.parametrize("key", [None, ""])
async def test_missing_api_key_is_not_configured(stub: OpenAIStub, key: str | None) -> None:
    engine = engine_for(stub, key=None) if key is None else OpenAIEngine(
        OpenAISettings(base_url=stub.base_url), SecretStr(key)
    )  # fmt: skip
    with pytest.raises(EngineNotConfigured) as caught:
        engine.load()
    assert caught.value.code == "engine_not_configured"
    assert "OPENAI_API_KEY" in caught.value.message
    assert "WHISP_TRANSCRIPTION__OPENAI_API_KEY" in caught.value.message
    assert not engine.loaded
    with pytest.raises(EngineNotConfigured):
        await engine.transcribe(make_clip(), TranscribeOptions())
    assert stub.requests == []


async def test_load_unload_and_identity(stub: OpenAIStub) -> None:
    engine = engine_for(stub, model="gpt-4o-mini-transcribe")
    assert (engine.name, engine.model_name, engine.loaded) == (
        "openai", "gpt-4o-mini-transcribe", False
    )  # fmt: skip
    engine.load()
    assert engine.loaded
    engine.unload()
    assert not engine.loaded
    await engine.transcribe(make_clip(), TranscribeOptions())  # loads again
    assert engine.loaded and len(stub.requests) == 1


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """The test installs our real logging setup; put the root logger back afterwards."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    yield
    root.handlers[:], level = saved
    root.setLevel(level)
    structlog.contextvars.clear_contextvars()


async def test_api_key_never_logged(
    stub: OpenAIStub, restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    # Configured here, not in a fixture: capsys swaps stdout per test phase.
    configure_logging("test-openai", LoggingSettings(level="DEBUG", json_logs=True))
    stub.reset(
        Reply.error(429, "slow down", headers={"Retry-After": "0"}),
        Reply(500),
        Reply.error(401, f"Incorrect API key provided: {KEY}."),
    )
    engine = engine_for(stub)
    with pytest.raises(UpstreamAuth):
        await engine.transcribe(make_clip(), TranscribeOptions())
    await engine.transcribe(make_clip(), TranscribeOptions())

    out = capsys.readouterr().out
    assert out.count('"openai_retry"') == 2  # the logs really were captured
    assert '"status": 429' in out and '"status": 500' in out
    assert KEY not in out
