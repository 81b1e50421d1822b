"""A transcription worker app running in-process against the session's real Redis.

`tiny_engine` lives in tests/conftest.py: the audio tests use the same loaded model.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from tests.support.speech import Utterance, speech_corpus
from whisp_audio.app import create_app as create_audio_app
from whisp_audio.settings import AudioSettings
from whisp_shared.bus import EventBus
from whisp_shared.config import BusSettings
from whisp_transcription.app import create_app
from whisp_transcription.engines.faster_whisper_engine import FasterWhisperEngine
from whisp_transcription.settings import TranscriptionSettings


@pytest.fixture
def audio_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "audio"
    folder.mkdir()
    return folder


WorkerFactory = Callable[..., AbstractAsyncContextManager[FastAPI]]


@pytest.fixture
def running_worker(
    bus_settings: BusSettings, audio_dir: Path, tiny_engine: FasterWhisperEngine
) -> WorkerFactory:
    """Start a worker app's lifespan (model, bus, consumers); settings overridable."""

    @asynccontextmanager
    async def run(**overrides: object) -> AsyncIterator[FastAPI]:
        settings = TranscriptionSettings(audio_dir=audio_dir, **overrides)  # type: ignore[arg-type]
        app = create_app(settings, EventBus(bus_settings), engine=tiny_engine)
        async with app.router.lifespan_context(app):
            yield app

    return run


@pytest.fixture(scope="session")
def speech_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("speech")


@pytest.fixture(scope="session")
def corpus(speech_dir: Path) -> list[tuple[Utterance, Path]]:
    """Speech made in this run by espeak-ng + sox, with its known text."""
    return speech_corpus(speech_dir)


AudioClientFactory = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def audio_client(bus_settings: BusSettings, tmp_path: Path) -> AudioClientFactory:
    """The real audio service in-process (its live routes feed live workers), with a client."""

    @asynccontextmanager
    async def run(**overrides: object) -> AsyncIterator[httpx.AsyncClient]:
        values: dict[str, object] = {"data_dir": tmp_path / "audio-data", **overrides}
        settings = AudioSettings(**values)  # type: ignore[arg-type]
        app = create_audio_app(settings, EventBus(bus_settings))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://audio.test", timeout=30
            ) as client:
                yield client

    return run
