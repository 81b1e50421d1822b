"""Every way a clip can fail becomes a TranscriptionFailed with a stable code — never silence."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest
from redis.asyncio import Redis

from tests.integration.bus_helpers import stream_events, wait_for
from whisp_shared.events import RecordingCompleted, TranscriptionFailed, TranscriptReady
from whisp_shared.streams import RECORDINGS, TRANSCRIPTS, dead_letter_stream


def write_tone(path: Path, seconds: float = 1.0) -> Path:
    t = np.arange(int(16000 * seconds)) / 16000
    pcm = (0.3 * np.sin(2 * np.pi * 440 * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(pcm.tobytes())
    return path


async def publish_and_get(app, redis: Redis, uri: str, rid: str = "r1"):
    await app.state.bus.publish(
        RECORDINGS, RecordingCompleted(recording_id=rid, user_id="carol", audio_uri=uri)
    )

    async def arrived() -> bool:
        return await redis.xlen(TRANSCRIPTS) >= 1

    await wait_for(arrived, timeout=20)
    [event] = await stream_events(redis, TRANSCRIPTS)
    return event


@pytest.mark.parametrize(
    ("make_uri", "code", "words"),
    [
        (lambda d: (d / "missing.wav").as_uri(), "audio_not_found", "does not exist"),
        (lambda d: Path("/etc/hostname").as_uri(), "bad_audio_uri", "outside the shared"),
        (lambda d: "ftp://example.invalid/a.wav", "bad_audio_uri", "unsupported"),
        (lambda d: "http://127.0.0.1:9/audio/x", "audio_unavailable", "cannot reach"),
    ],
    ids=["missing-file", "escape-attempt", "bad-scheme", "audio-service-down"],
)
async def test_unfetchable_audio_fails_with_a_code(
    running_worker, redis: Redis, audio_dir: Path, make_uri, code: str, words: str
) -> None:
    async with running_worker() as app:
        event = await publish_and_get(app, redis, make_uri(audio_dir))
    assert isinstance(event, TranscriptionFailed)
    assert event.code == code
    assert words in event.message
    assert event.user_id == "carol"


async def test_undecodable_file_fails_at_once(running_worker, redis: Redis, audio_dir: Path):
    garbage = audio_dir / "garbage.wav"
    garbage.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really audio at all" * 20)
    async with running_worker() as app:
        event = await publish_and_get(app, redis, garbage.as_uri())
    assert isinstance(event, TranscriptionFailed)
    assert event.code == "undecodable_audio"
    assert event.retryable is False
    assert await redis.xlen(dead_letter_stream(RECORDINGS)) == 1


async def test_too_long_and_too_large_are_refused(running_worker, redis: Redis, audio_dir: Path):
    clip = write_tone(audio_dir / "tone.wav", seconds=3)
    async with running_worker(max_audio_s=1.0) as app:
        event = await publish_and_get(app, redis, clip.as_uri(), rid="long")
    assert isinstance(event, TranscriptionFailed)
    assert event.code == "audio_too_long"
    await redis.delete(TRANSCRIPTS)
    async with running_worker(max_audio_bytes=1000) as app:
        event = await publish_and_get(app, redis, clip.as_uri(), rid="large")
    assert isinstance(event, TranscriptionFailed)
    assert event.code == "audio_too_large"


async def test_a_tone_is_not_speech(running_worker, redis: Redis, audio_dir: Path) -> None:
    clip = write_tone(audio_dir / "tone.wav", seconds=2)
    async with running_worker() as app:
        event = await publish_and_get(app, redis, clip.as_uri())
    assert isinstance(event, TranscriptReady)
    assert event.is_empty
    assert event.text == ""
    assert event.audio_duration_s == pytest.approx(2.0, abs=0.05)
    assert event.engine == "faster-whisper"
    assert event.model == "tiny.en"
