"""`create_app()` for a transcription worker: the model loads before consuming starts.

It reads two streams in the `transcribers` group: uploaded recordings (`Transcriber`) and,
unless `max_live_sessions` is 0, live ones (`LiveTranscriber`); both share the model thread.

The worker's only HTTP routes are the shared ops ones (`/healthz`, `/readyz`, `/metrics`);
it still installs the shared error handlers, so even a wrong path gets the one error body.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from whisp_shared.bus import EventBus
from whisp_shared.bus_depth import watch_depth
from whisp_shared.config import BusSettings
from whisp_shared.logs import get_logger
from whisp_shared.service import background, create_service_app
from whisp_transcription import metrics
from whisp_transcription.consumer import ModelUse, Transcriber
from whisp_transcription.engines.base import Engine
from whisp_transcription.fetch import AudioFetcher
from whisp_transcription.live_consumer import LiveTranscriber
from whisp_transcription.model_thread import ModelThread
from whisp_transcription.settings import TranscriptionSettings

log = get_logger(__name__)


def build_engine(settings: TranscriptionSettings, thread: ModelThread) -> Engine:
    """The configured engine, imported only when chosen (each pulls in a heavy SDK)."""
    if settings.engine == "openai":
        from whisp_transcription.engines.openai_engine import OpenAIEngine  # noqa: PLC0415

        return OpenAIEngine(settings.openai, settings.openai_api_key)
    from whisp_transcription.engines.faster_whisper_engine import (  # noqa: PLC0415
        FasterWhisperEngine,
    )

    return FasterWhisperEngine(settings.faster_whisper, thread)


def create_app(
    settings: TranscriptionSettings | None = None,
    bus: EventBus | None = None,
    engine: Engine | None = None,
) -> FastAPI:
    settings = settings or TranscriptionSettings()
    bus = bus or EventBus(BusSettings())
    thread = ModelThread(settings.slots)
    engine = engine or build_engine(settings, thread)
    fetcher = AudioFetcher(
        settings.audio_dir,
        settings.max_audio_bytes,
        settings.fetch_timeout_s,
        settings.audio_service_token,
    )
    use = ModelUse()
    transcriber = Transcriber(engine, fetcher, settings, thread, use)
    live = LiveTranscriber(engine, bus, settings, thread, use)
    takes_live = settings.max_live_sessions > 0
    consumers = [*transcriber.consumers(), *([live.consumer()] if takes_live else [])]
    state = {"model_ready": False}

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            await thread.run(engine.load)
        except Exception as exc:  # missing, damaged, unreadable: the same for ops
            # Stay up and say why (/readyz: model false) rather than exit and be restarted
            # into the same failure; take no work, so the healthy workers get all of it.
            log.error(
                "model not loaded; this worker takes no work",
                model=engine.model_name,
                error=f"{exc!r}",
            )
            bus.hold()
        else:
            state["model_ready"] = True
            metrics.MODEL_LOADED.set(1)
            log.info("model loaded", engine=engine.name, model=engine.model_name)
        # What the group has left of each stream it reads, as KEDA measures it.
        loops = [watch_depth(bus.redis, [(c.stream, c.group) for c in consumers])]
        if settings.idle_unload_s:
            loops.append(transcriber.unload_when_idle(settings.idle_unload_s))
        try:
            async with background(*loops):
                yield
        finally:
            await fetcher.aclose()
            thread.shutdown()

    async def model_ready() -> bool:
        return state["model_ready"]

    for consumer in consumers:
        bus.consume(consumer)
    app = create_service_app(
        "WhisPTT transcription worker", bus, lifespan=lifespan, checks={"model": model_ready}
    )
    app.state.transcriber = transcriber
    app.state.live = live
    return app
