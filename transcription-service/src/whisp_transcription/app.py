"""`create_app()` for a transcription worker: bus consumer plus ops endpoints."""

from fastapi import FastAPI

from whisp_shared.bus import Consumer, EventBus
from whisp_shared.config import BusSettings
from whisp_shared.errors import PermanentError
from whisp_shared.events import Event, EventBase, FailureFields, TranscriptionFailed
from whisp_shared.service import create_service_app
from whisp_shared.streams import RECORDINGS, TRANSCRIBERS_GROUP, TRANSCRIPTS
from whisp_transcription.settings import TranscriptionSettings


def failure_event(event: Event, failure: FailureFields) -> TranscriptionFailed:
    return TranscriptionFailed(**event.follow_up(), **failure.model_dump())


async def transcribe(event: Event) -> EventBase | None:
    raise PermanentError(
        "no transcription engine is installed in this build", code="engine_unavailable"
    )


def create_app(
    settings: TranscriptionSettings | None = None, bus: EventBus | None = None
) -> FastAPI:
    settings = settings or TranscriptionSettings()
    bus = bus or EventBus(BusSettings())
    bus.consume(
        Consumer(
            stream=RECORDINGS,
            group=TRANSCRIBERS_GROUP,
            output_stream=TRANSCRIPTS,
            handler=transcribe,
            on_failure=failure_event,
            max_workers=settings.max_concurrency,
        )
    )
    app = create_service_app("WhisPTT transcription worker", bus)
    app.state.settings = settings
    return app
