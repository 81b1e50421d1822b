"""`create_app()` for the audio service."""

from fastapi import FastAPI

from whisp_audio.settings import AudioSettings
from whisp_shared.bus import EventBus
from whisp_shared.config import BusSettings
from whisp_shared.service import create_service_app


def create_app(settings: AudioSettings | None = None, bus: EventBus | None = None) -> FastAPI:
    settings = settings or AudioSettings()
    bus = bus or EventBus(BusSettings())
    app = create_service_app("WhisPTT audio service", bus)
    app.state.settings = settings
    return app
