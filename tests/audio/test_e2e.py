"""End to end across processes: the audio service (`python -m whisp_audio`) takes an
upload over real HTTP, a transcription worker process (`python -m whisp_transcription`)
fetches the audio by the event's `audio_uri` and publishes the transcript."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from tests.integration.bus_helpers import stream_events, wait_for
from tests.support.formats import encode
from tests.support.processes import Services, service
from tests.support.speech import word_error_rate
from whisp_cli.redis_server import RedisServer
from whisp_shared.events import TranscriptReady
from whisp_shared.streams import TRANSCRIPTS

pytestmark = pytest.mark.e2e


@pytest.fixture(params=["http", "file"])
def stack(
    request: pytest.FixtureRequest, redis_server: RedisServer, redis: Redis, tmp_path: Path
) -> Iterator[str]:
    """Audio service + one worker; `file` mode shares the data folder instead of HTTP."""
    data_dir = tmp_path / "audio-data"
    data_dir.mkdir()
    audio = service(
        "audio",
        env={"WHISP_AUDIO__DATA_DIR": str(data_dir), "WHISP_AUDIO__AUDIO_URI": request.param},
    )
    worker = service(
        "transcription", name="worker-0", env={"WHISP_TRANSCRIPTION__AUDIO_DIR": str(data_dir)}
    )
    with Services(
        [audio, worker], log_dir=tmp_path, redis_url=redis_server.url, stop_timeout=30
    ) as services:
        yield services["audio"].url
    # uvicorn re-raises SIGTERM after a graceful shutdown: -15 with a clean log is clean.
    log = services["audio"].log_text()
    assert services["audio"].returncode in (0, -15) and "Application shutdown complete" in log, log


@pytest.mark.parametrize("fmt", ["webm_opus", "wav44k_stereo"])
async def test_an_upload_becomes_a_transcript(
    stack: str, redis: Redis, speech, tmp_path: Path, fmt: str
) -> None:
    utterance, wav = speech["late-for-dinner"]
    clip = encode(wav, fmt, tmp_path)
    async with httpx.AsyncClient(base_url=stack, timeout=30) as client:
        started = time.perf_counter()
        response = await client.post(
            "/recordings",
            files={"file": (clip.name, clip.read_bytes(), "application/octet-stream")},
            data={"language": "en"},
            headers={"X-Whisp-User": "erin"},
        )
        uploaded = time.perf_counter()
        assert response.status_code == 201, response.text
        rid = response.json()["recording_id"]

        async def transcribed() -> bool:
            return await redis.xlen(TRANSCRIPTS) >= 1

        await wait_for(transcribed, timeout=60, interval=0.02)
        done = time.perf_counter()
    [event] = await stream_events(redis, TRANSCRIPTS)
    assert isinstance(event, TranscriptReady), event
    assert event.recording_id == rid and event.user_id == "erin"
    wer = word_error_rate(utterance.text, event.text)
    print(
        f"\n{fmt}: upload {1000 * (uploaded - started):.0f} ms, transcript after "
        f"{1000 * (done - started):.0f} ms, WER {wer:.3f}: {event.text!r}"
    )
    # tiny.en gets this sentence right from the WAV (0 errors); after Opus at FFmpeg's
    # default bitrate it has heard "And the message" for "Send a message" (2 of 15 words).
    # 0.2 allows that model noise, while a wrong, truncated or garbled clip scores >= 0.5.
    assert wer <= 0.2
