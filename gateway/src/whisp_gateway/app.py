"""`create_app()` for the gateway: REST, SSE, the OpenAI-compatible API and the web page."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import InterfaceError, OperationalError

from whisp_gateway import metrics
from whisp_gateway.api import (
    agents,
    devices,
    events,
    me,
    openai_compat,
    realtime,
    recordings,
    session,
)
from whisp_gateway.clients import AgentService, AudioService
from whisp_gateway.consumer import snapshot_consumers
from whisp_gateway.hub import EventHub
from whisp_gateway.queue_watch import QueueWatcher
from whisp_gateway.quota import Quota
from whisp_gateway.ratelimit import Limit, RateLimiter
from whisp_gateway.repository import Repository, open_repository
from whisp_gateway.retention import RetentionSweeper
from whisp_gateway.settings import GatewaySettings
from whisp_gateway.wyoming.server import wyoming_server
from whisp_shared.bus import EventBus
from whisp_shared.config import BusSettings
from whisp_shared.service import create_service_app, on_exit_signal

WEB_DIR = Path(__file__).parent / "web"
DATABASE_UNREACHABLE = (OperationalError, InterfaceError, ConnectionRefusedError)
"""The database away: 503 + Retry-After like Redis, not a 500."""


def create_app(
    settings: GatewaySettings | None = None,
    bus: EventBus | None = None,
    repo: Repository | None = None,
) -> FastAPI:
    settings = settings or GatewaySettings()
    bus = bus or EventBus(BusSettings())
    repo = repo or open_repository(settings.database_url)
    limit = Limit.parse(settings.rate_limit, settings.rate_burst)
    token = settings.service_token.get_secret_value() if settings.service_token else None
    for consumer in snapshot_consumers(repo, bus, settings.quota):
        bus.consume(consumer)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await repo.create_schema()
        hub = EventHub(bus.redis, block_ms=bus.settings.read_block_ms)
        await hub.start()
        app.state.hub = hub
        app.state.limiter = RateLimiter(bus.redis, limit)
        app.state.quota = Quota(bus.redis, settings.quota)
        app.state.audio = AudioService(settings.audio_service_url, token)
        app.state.agents = AgentService(settings.agent_service_url, token)
        retention = RetentionSweeper(repo, app.state.audio, settings.retention_interval_s)
        sweeping = asyncio.create_task(retention.run(bus.redis))
        app.state.queue = QueueWatcher(bus)
        watching = asyncio.create_task(app.state.queue.run())
        wyoming = wyoming_server(
            settings, repo, hub, app.state.audio, app.state.limiter, app.state.agents
        )
        if wyoming is not None:
            await wyoming.start()
        app.state.wyoming = wyoming
        loop = asyncio.get_running_loop()

        def end_streams() -> None:  # in the signal handler: schedule only
            loop.call_soon_threadsafe(hub.disconnect_all)

        forget = on_exit_signal(end_streams)
        try:
            yield
        finally:
            forget()
            if wyoming is not None:
                await wyoming.stop()
            for task in (sweeping, watching):
                task.cancel()
                with suppress(asyncio.CancelledError):
                    await task
            await hub.stop()
            await app.state.audio.aclose()
            await app.state.agents.aclose()
            await repo.close()

    app = create_service_app(
        "WhisPTT gateway",
        bus,
        lifespan=lifespan,
        checks={"database": repo.ping},
        openai_prefix=openai_compat.OPENAI_PREFIX,
        unavailable=DATABASE_UNREACHABLE,
    )
    app.state.settings = settings
    app.state.repo = repo
    app.add_middleware(metrics.RequestMetrics)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=True,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Last-Event-ID"],
        )
    for module in (session, events, recordings, devices, agents, openai_compat, realtime, me):
        app.include_router(module.router)
    app.mount("/", StaticFiles(directory=settings.static_dir or WEB_DIR, html=True), name="web")
    return app
