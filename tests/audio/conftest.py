"""Audio-service fixtures: the app in-process against the session's real Redis, a data
folder per test, real speech (espeak-ng) and a test tone."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis

from tests.integration.bus_helpers import stream_events
from tests.support.speech import SENTENCES, Utterance, speech_corpus, write_wav
from whisp_audio.app import create_app
from whisp_audio.device_recordings import SourceFactory
from whisp_audio.settings import AudioSettings
from whisp_shared.bus import EventBus
from whisp_shared.config import BusSettings
from whisp_shared.events import RecordingCompleted
from whisp_shared.streams import PRIORITY_RECORDINGS, RECORDINGS

BASE_URL = "http://audio.test"
TONE_HZ = 440.0
TONE_AMPLITUDE = 0.5  # RMS 0.354 -> -9.0 dBFS


@dataclass
class AudioService:
    app: FastAPI
    client: httpx.AsyncClient
    settings: AudioSettings


AudioServiceFactory = Callable[..., AbstractAsyncContextManager[AudioService]]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "audio-data"


@pytest.fixture
def audio_service(bus_settings: BusSettings, data_dir: Path) -> AudioServiceFactory:
    """Run the audio app's lifespan with an HTTP client on it; settings overridable."""

    @asynccontextmanager
    async def run(
        source_factory: SourceFactory | None = None,
        headers: dict[str, str] | None = None,
        **overrides: object,
    ) -> AsyncIterator[AudioService]:
        values: dict[str, object] = {"data_dir": data_dir, "public_url": BASE_URL, **overrides}
        settings = AudioSettings(**values)  # type: ignore[arg-type]
        app = create_app(settings, EventBus(bus_settings), source_factory=source_factory)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url=BASE_URL, headers=headers, timeout=30
            ) as client:
                yield AudioService(app, client, settings)

    return run


async def published(redis: Redis) -> list[RecordingCompleted]:
    """What the audio service announced, on either lane, in the order it did."""
    events = [e for s in (PRIORITY_RECORDINGS, RECORDINGS) for e in await stream_events(redis, s)]
    events.sort(key=lambda e: e.created_at)
    assert all(isinstance(e, RecordingCompleted) for e in events)
    return events  # type: ignore[return-value]


SPEECH_IDS = ("late-for-dinner", "walk-the-dog")


@pytest.fixture(scope="session")
def speech(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Utterance, Path]]:
    """Two real sentences spoken by espeak-ng (16 kHz mono WAV, 0.3 s of silence around)."""
    chosen = [u for u in SENTENCES if u.id in SPEECH_IDS]
    out = tmp_path_factory.mktemp("audio-speech")
    return {u.id: (u, path) for u, path in speech_corpus(out, chosen)}


@pytest.fixture(scope="session")
def tone_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two seconds of a 440 Hz tone at half scale: a known level for the meter."""
    t = np.arange(2 * 16_000) / 16_000
    samples = TONE_AMPLITUDE * np.sin(2 * np.pi * TONE_HZ * t)
    return write_wav(tmp_path_factory.mktemp("tone") / "tone.wav", samples)


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[str]:
    """Run `app` under a real uvicorn server on a free loopback port (lifespan included);
    yields its base URL. Needed where ASGITransport falls short: streaming responses
    (SSE) and real client disconnects."""
    import asyncio

    import uvicorn

    from whisp_cli.redis_server import free_port

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
