"""The desk tools' half of the Realtime protocol (`whisp_cli.desk.realtime`), against a real
`websockets` server that speaks it and breaks on cue (`realtime_standin`); the real
gateway's side is in tests/e2e/test_realtime.py and the tmux/Xvfb tests."""

from __future__ import annotations

import base64
import json
import re
import time

import numpy as np
import pytest

from tests.cli.realtime_standin import Standin
from whisp_cli.desk.realtime import (
    RealtimeStream,
    StreamBroken,
    can_stream,
    realtime_url,
    stream_target,
)
from whisp_cli.desk.settings import CliSettings
from whisp_shared.options import RecordingOptions

pytestmark = pytest.mark.timeout(30)
RATE = 16_000


def tone(seconds: float, rate: int = RATE) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32).reshape(-1, 1)


def feed_blocks(stream: RealtimeStream, audio: np.ndarray, block: int = 320) -> None:
    """As a source does: 20 ms blocks (no pacing: the stream queues them)."""
    for start in range(0, len(audio), block):
        stream.feed(audio[start : start + block])


def wait_until(predicate: object, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_the_url_follows_the_gateway_and_carries_the_route() -> None:
    options = RecordingOptions(agent_id="assistant")
    assert realtime_url("http://127.0.0.1:8000/", None, options) == (
        "ws://127.0.0.1:8000/v1/realtime?intent=transcription&agent_id=assistant"
    )
    assert realtime_url("https://whisp.example/base", None, RecordingOptions()) == (
        "wss://whisp.example/base/v1/realtime?intent=transcription"
    )
    piped = RecordingOptions(pipeline="notes")
    assert realtime_url("http://x", "ws://elsewhere:9/v1/realtime", piped) == (
        "ws://elsewhere:9/v1/realtime?intent=transcription&pipeline=notes"
    )


def test_what_cannot_be_streamed_is_uploaded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WHISP_CONFIG", raising=False)
    assert can_stream(RecordingOptions(agent_id="assistant")) is None
    assert can_stream(RecordingOptions(session_id="chat")) is not None
    settings = CliSettings()
    url, note = stream_target(settings, "http://h:1", RecordingOptions(), None)
    assert url == "ws://h:1/v1/realtime?intent=transcription" and note is None
    assert stream_target(settings, "http://h:1", RecordingOptions(), False) == (None, None)
    monkeypatch.setenv("WHISP_CLI__STREAM", "false")
    assert stream_target(CliSettings(), "http://h:1", RecordingOptions(), None) == (None, None)
    url, note = stream_target(settings, "http://h:1", RecordingOptions(session_id="s"), True)
    assert url is None and note is not None and "uploaded" in note


def test_a_press_streams_16_khz_pcm_in_100_ms_appends_and_commits() -> None:
    deltas: list[tuple[str, str]] = []
    with Standin() as server:
        stream = RealtimeStream(
            server.url + "?intent=transcription",
            "tok-1",
            RecordingOptions(language="en"),
            on_delta=lambda item, text: deltas.append((item, text)),
        )
        stream.begin(RATE)
        audio = tone(1.05)
        feed_blocks(stream, audio)
        item = stream.commit(timeout_s=5)
        wait_until(server.closed.is_set)
    assert item == server.item_id
    kinds = server.kinds()
    assert kinds[0] == "session.update" and kinds[-1] == "input_audio_buffer.commit"
    update = server.received[0]["session"]
    assert update["type"] == "transcription"
    assert update["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 16_000}
    assert update["audio"]["input"]["turn_detection"] is None
    assert update["audio"]["input"]["transcription"] == {"language": "en"}
    appends = [e for e in server.received if e["type"] == "input_audio_buffer.append"]
    sizes = [len(base64.b64decode(e["audio"])) for e in appends]
    assert sizes[:-1] == [3200] * (len(sizes) - 1) and 0 < sizes[-1] <= 3200
    pcm = np.frombuffer(server.pcm(), "<i2")
    assert len(pcm) == len(audio)  # every sample the source gave, none twice
    assert np.abs(pcm / 32767 - audio[:, 0]).max() < 1e-3
    assert server.headers is not None and server.headers["Authorization"] == "Bearer tok-1"
    assert server.path is not None and "intent=transcription" in server.path
    assert deltas == [(item, "Send"), (item, " a"), (item, " message")]


def test_cancel_clears_the_buffer() -> None:
    with Standin() as server:
        stream = RealtimeStream(server.url, None, RecordingOptions())
        stream.begin(RATE)
        feed_blocks(stream, tone(0.3))
        stream.cancel(wait_s=5)
        wait_until(server.closed.is_set)
    assert server.kinds()[-1] == "input_audio_buffer.clear"
    assert "input_audio_buffer.commit" not in server.kinds()


@pytest.mark.parametrize(
    ("fault", "why"),
    [
        ("refuse", r"refused the stream \(HTTP 401: no such token\)"),
        ("error", r"the audio service is down \(audio_unavailable\)"),
        ("drop", r"closed the stream \(code 1011: going away mid-utterance\)"),
    ],
)
def test_a_broken_stream_says_why_and_the_commit_refuses(fault: str, why: str) -> None:
    with Standin(fault=fault, after_appends=3) as server:  # type: ignore[arg-type]
        stream = RealtimeStream(server.url, None, RecordingOptions())
        stream.begin(RATE)
        feed_blocks(stream, tone(1.0))
        wait_until(stream.broken.is_set)
        assert stream.error is not None
        assert re.search(why, stream.error), stream.error
        started = time.monotonic()
        with pytest.raises(StreamBroken, match=why):
            stream.commit(timeout_s=5)
        assert time.monotonic() - started < 0.5, "a broken stream does not wait for the timeout"
    assert "input_audio_buffer.commit" not in server.kinds()


def test_nobody_listening_breaks_at_once() -> None:
    from whisp_cli.redis_server import free_port

    stream = RealtimeStream(f"ws://127.0.0.1:{free_port()}/v1/realtime", None, RecordingOptions())
    stream.begin(RATE)
    stream.feed(tone(0.1))
    wait_until(stream.broken.is_set, timeout_s=3)
    assert stream.error is not None and "cannot open the stream" in stream.error
    with pytest.raises(StreamBroken):
        stream.commit(timeout_s=1)


def test_resampled_audio_reaches_the_socket_at_16_khz() -> None:
    """A 48 kHz stereo microphone: the socket still gets 16 kHz mono, the same tone."""
    with Standin() as server:
        stream = RealtimeStream(server.url, None, RecordingOptions())
        stream.begin(48_000)
        mono = tone(1.0, 48_000)
        feed_blocks(stream, np.hstack([mono, mono]), block=480)
        stream.commit(timeout_s=5)
    pcm = np.frombuffer(server.pcm(), "<i2").astype(np.float32) / 32767
    assert abs(len(pcm) - RATE) <= 64
    spectrum = np.abs(np.fft.rfft(pcm[1000:-1000]))
    peak_hz = np.argmax(spectrum) * RATE / (len(pcm) - 2000)
    assert abs(peak_hz - 440) < 5


def test_an_unknown_server_event_is_ignored() -> None:
    """OpenAI adds event types over time: a client must not break on one."""
    stream = RealtimeStream("ws://unused", None, RecordingOptions())
    stream._handle({"type": "input_audio_buffer.speech_started", "audio_start_ms": 0})
    stream._handle(json.loads('{"type": "conversation.item.input_audio_transcription.delta"}'))
    assert not stream.broken.is_set()
