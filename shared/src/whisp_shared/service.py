"""What every service's HTTP face has in common: ops routes and the process runner.

Each service builds its app with `create_app()`; connections open in the lifespan,
never at import time. Uvicorn turns SIGTERM/SIGINT into a lifespan shutdown, in
which the bus stops reading and lets in-flight handlers finish.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from types import FrameType
from typing import Any, TypeVar, cast

import uvicorn
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field

from whisp_shared.bus import EventBus
from whisp_shared.config import LoggingSettings, ServiceSettings
from whisp_shared.http_errors import install_error_handlers
from whisp_shared.logs import configure_logging

ReadyCheck = Callable[[], Awaitable[bool]]
T = TypeVar("T")


def app_state(name: str, kind: type[T]) -> Callable[[Request], T]:
    """A dependency returning `app.state.<name>`, typed, for `Annotated[X, Depends(...)]`
    aliases (tests override them through `app.dependency_overrides` like any other)."""

    def get(request: Request) -> T:
        return cast(T, getattr(request.app.state, name))

    get.__name__ = f"get_{name}"
    get.__qualname__ = f"app_state.get_{name}.{kind.__name__}"
    return get


class Health(BaseModel):
    status: str
    checks: dict[str, bool] = Field(default_factory=dict)


def ops_router(checks: Mapping[str, ReadyCheck]) -> APIRouter:
    """`/healthz` (the process answers), `/readyz` (its dependencies answer), `/metrics`."""
    router = APIRouter(tags=["ops"])

    @router.get("/healthz")
    async def healthz() -> Health:
        return Health(status="ok")

    @router.get("/readyz", response_model=Health, responses={503: {"model": Health}})
    async def readyz() -> JSONResponse:
        results = {name: await check() for name, check in checks.items()}
        ready = all(results.values())
        body = Health(status="ready" if ready else "not ready", checks=results)
        return JSONResponse(body.model_dump(), status_code=200 if ready else 503)

    @router.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router


Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def create_service_app(
    title: str,
    bus: EventBus,
    *,
    lifespan: Lifespan | None = None,
    checks: Mapping[str, ReadyCheck] | None = None,
    openai_prefix: str | None = None,
    unavailable: tuple[type[Exception], ...] = (),
) -> FastAPI:
    """A FastAPI app whose lifespan connects the bus, enters `lifespan` (load a model, open
    clients: it may use `bus.redis`), and only then starts consuming; shutdown runs in reverse,
    so consumers stop (in-flight work finishes or stays pending) before resources close.

    `/readyz` checks Redis plus any extra `checks` (a model loaded, a registry valid). Every
    error leaves as the one shared body (`install_error_handlers`; OpenAI-shaped under
    `openai_prefix`; `unavailable` names the service's own dependencies that answer 503).
    """

    @asynccontextmanager
    async def run(app: FastAPI) -> AsyncIterator[None]:
        await bus.connect()
        try:
            async with lifespan(app) if lifespan else _nothing():
                await bus.start()
                try:
                    yield
                finally:
                    await bus.stop()
        finally:
            await bus.stop()

    app = FastAPI(title=title, lifespan=run)
    install_error_handlers(app, openai_prefix=openai_prefix, unavailable=unavailable)
    app.state.bus = bus
    app.include_router(ops_router({"redis": bus.ping, **(checks or {})}))
    return app


@asynccontextmanager
async def _nothing() -> AsyncIterator[None]:
    yield


@asynccontextmanager
async def background(*work: Coroutine[Any, Any, None]) -> AsyncIterator[None]:
    """Run `work` as tasks for the life of the block (a lifespan's loops: retention, lag
    gauges, idle unload), then cancel them and wait until each has ended."""
    tasks = [asyncio.create_task(job) for job in work]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with suppress(asyncio.CancelledError):
                await task


_exit_callbacks: list[Callable[[], None]] = []


def on_exit_signal(callback: Callable[[], None]) -> Callable[[], None]:
    """Call `callback` the moment the server is told to stop (SIGTERM/SIGINT), before it
    waits for open connections to finish: long-lived streams (SSE) must end then, or the
    graceful shutdown waits out its whole timeout. It runs in the signal handler, so it
    should only schedule work (`loop.call_soon_threadsafe`). Returns the unregistration."""
    _exit_callbacks.append(callback)
    return lambda: _exit_callbacks.remove(callback)


class _Server(uvicorn.Server):
    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        for callback in list(_exit_callbacks):
            callback()


def serve(service: str, factory: str, settings: ServiceSettings) -> None:
    """Run `factory` (a 'module:function' path) under uvicorn with our JSON logging; on
    SIGTERM open requests get `settings.shutdown_timeout_s`, then the lifespan stops."""
    configure_logging(service, LoggingSettings())
    config = uvicorn.Config(
        factory,
        factory=True,
        host=settings.host,
        port=settings.port,
        log_config=None,
        timeout_graceful_shutdown=settings.shutdown_timeout_s,
    )
    _Server(config).run()
