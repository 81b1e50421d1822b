"""`create_app()` for the gateway."""

from fastapi import FastAPI

from whisp_gateway.settings import GatewaySettings
from whisp_shared.bus import EventBus
from whisp_shared.config import BusSettings
from whisp_shared.service import create_service_app


def create_app(settings: GatewaySettings | None = None, bus: EventBus | None = None) -> FastAPI:
    settings = settings or GatewaySettings()
    bus = bus or EventBus(BusSettings())
    app = create_service_app("WhisPTT gateway", bus)
    app.state.settings = settings
    return app
