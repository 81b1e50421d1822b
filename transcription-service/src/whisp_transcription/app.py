"""`create_app()` for a transcription worker: the model loads before consuming starts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from whisp_shared.bus import Consumer, EventBus
from whisp_shared.config import BusSettings
from whisp_shared.events import RecordingCompleted
from whisp_shared.logs import get_logger
from whisp_shared.service import create_service_app
from whisp_shared.streams import RECORDINGS, TRANSCRIBERS_GROUP, TRANSCRIPTS
from whisp_transcription import metrics
from whisp_transcription.engines.base import Engine
from whisp_transcription.fetch import AudioFetcher
from whisp_transcription.settings import TranscriptionSettings
from whisp_transcription.worker import TranscriptionWorker, cancel_quietly, failure_event

log = get_logger(__name__)
LAG_REFRESH_S = 5.0


def build_engine(settings: TranscriptionSettings) -> Engine:
    if settings.engine == "openai":
        from whisp_transcription.engines.openai_engine import OpenAIEngine  # noqa: PLC0415

        return OpenAIEngine(settings.openai, settings.openai_api_key)
    from whisp_transcription.engines.faster_whisper_engine import (  # noqa: PLC0415
        FasterWhisperEngine,
    )

    return FasterWhisperEngine(settings.faster_whisper)


def create_app(
    settings: TranscriptionSettings | None = None,
    bus: EventBus | None = None,
    engine: Engine | None = None,
) -> FastAPI:
    settings = settings or TranscriptionSettings()
    bus = bus or EventBus(BusSettings())
    engine = engine or build_engine(settings)
    token = settings.audio_service_token
    fetcher = AudioFetcher(
        settings.audio_dir,
        settings.max_audio_bytes,
        settings.fetch_timeout_s,
        token.get_secret_value() if token else None,
    )
    worker = TranscriptionWorker(engine, fetcher, settings)
    state = {"model_ready": False}

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(engine.load)
        state["model_ready"] = True
        metrics.MODEL_LOADED.set(1)
        log.info("model loaded", engine=engine.name, model=engine.model_name)
        tasks = [asyncio.create_task(_refresh_lag(bus))]
        if settings.idle_unload_s:
            tasks.append(asyncio.create_task(worker.unload_when_idle(settings.idle_unload_s)))
        try:
            yield
        finally:
            for task in tasks:
                await cancel_quietly(task)
            await fetcher.aclose()

    async def model_ready() -> bool:
        return state["model_ready"]

    bus.consume(
        Consumer(
            stream=RECORDINGS,
            group=TRANSCRIBERS_GROUP,
            output_stream=TRANSCRIPTS,
            handler=worker.handle,
            on_failure=failure_event,
            accepts=lambda event: isinstance(event, RecordingCompleted),
            max_workers=settings.max_concurrency,
        )
    )
    app = create_service_app(
        "WhisPTT transcription worker", bus, lifespan=lifespan, checks={"model": model_ready}
    )
    app.state.settings = settings
    app.state.worker = worker
    return app


async def _refresh_lag(bus: EventBus) -> None:
    while True:
        try:
            metrics.QUEUE_LAG.set(await bus.group_lag(RECORDINGS, TRANSCRIBERS_GROUP))
        except Exception as exc:  # a metric must never take the worker down
            log.warning("queue lag refresh failed", error=str(exc))
        await asyncio.sleep(LAG_REFRESH_S)
