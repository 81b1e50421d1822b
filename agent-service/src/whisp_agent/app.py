"""`create_app()` for the agent service: the registry, the runtime, REST and the bus consumer.

The registry is loaded and validated here, before anything listens: an invalid registry
stops the service with every problem listed (see `__main__`), never a half-working one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from agents import set_tracing_disabled
from fastapi import FastAPI

from whisp_agent.api.agents import agents_router
from whisp_agent.api.me import me_router
from whisp_agent.api.records import records_router
from whisp_agent.api.runs import runs_router
from whisp_agent.build import AgentFactory, ModelSource, OpenAIModels
from whisp_agent.consumer import agent_consumer
from whisp_agent.registry import Registry, load_registry
from whisp_agent.runtime import AgentRuntime
from whisp_agent.sessions import RedisSessions, SessionStore, SQLiteSessions
from whisp_agent.settings import LOCAL_PROVIDER, AgentSettings
from whisp_agent.store import Store
from whisp_agent.tools import ToolDeps, builtin_tools
from whisp_agent.tools.transcripts import GatewayTranscripts
from whisp_shared.bus import EventBus
from whisp_shared.bus_depth import watch_depth
from whisp_shared.caller import CallerPolicy
from whisp_shared.config import BusSettings
from whisp_shared.logs import get_logger
from whisp_shared.service import ReadyCheck, background, create_service_app

log = get_logger(__name__)


class LocalModelWarm:
    """Ready check: the local model server has said ready (it answers `/readyz` only once its
    model is loaded and warm). Checked until it first succeeds, then remembered: a local
    model that goes away later fails the runs that need it (with `upstream_unavailable`),
    not the service, which may serve agents on other providers."""

    def __init__(self, url: str, http: httpx.AsyncClient) -> None:
        self.url = url
        self.http = http
        self.seen = False

    async def __call__(self) -> bool:
        if not self.seen:
            try:
                response = await self.http.get(self.url, timeout=2.0)
                self.seen = response.status_code == 200 and response.json().get("status") == "ready"
            except (httpx.HTTPError, ValueError):
                return False
        return self.seen


def load(settings: AgentSettings) -> Registry:
    """The validated registry (RegistryError lists every problem)."""
    return load_registry(settings.registry, settings, builtin_tools().names())


def uses_local_model(settings: AgentSettings) -> bool:
    """Agents default to the bundled local model server (not a `local` provider override)."""
    return (
        settings.default_provider == LOCAL_PROVIDER
        and settings.local_llm.enabled
        and LOCAL_PROVIDER not in settings.providers
    )


def create_app(
    settings: AgentSettings | None = None,
    bus: EventBus | None = None,
    models: ModelSource | None = None,
) -> FastAPI:
    """`models` replaces the HTTP models (tests pass the SDK's ScriptedModel)."""
    settings = settings or AgentSettings()
    bus = bus or EventBus(BusSettings())
    # Transcripts and prompts must not leave the machine as traces, with any provider.
    set_tracing_disabled(True)
    registry = load(settings)
    tools = builtin_tools()
    openai_models = OpenAIModels(settings)
    factory = AgentFactory(registry, settings, tools, models or openai_models)
    store = Store(settings.database_url or settings.data_dir / "agent.sqlite")
    sessions: SessionStore = (
        RedisSessions(bus.settings.redis_url, settings.session_ttl_s)
        if settings.sessions == "redis"
        else SQLiteSessions(settings.data_dir / "sessions.sqlite")
    )
    http = httpx.AsyncClient()
    deps = ToolDeps(
        user_id="",
        notes=store,
        transcripts=GatewayTranscripts(
            settings.gateway.url, settings.gateway_token, http, settings.gateway.timeout_s
        ),
    )
    runtime = AgentRuntime(registry, settings, factory, sessions, store, deps)
    consumer = agent_consumer(runtime, bus, settings.max_concurrency)
    bus.consume(consumer)

    for agent_id in registry.agents:
        problem = factory.unavailable(agent_id)
        if problem:
            log.warning("agent_unavailable", agent=agent_id, reason=problem)
    if settings.mode != "local" and settings.service_token is None:
        log.warning("no service token: REST callers are trusted to name their user")

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            await store.open()  # the schema; fails the start if the database is away
            # The group's lag and pending on the transcripts, as KEDA measures them.
            async with background(watch_depth(bus.redis, [(consumer.stream, consumer.group)])):
                yield
        finally:
            await openai_models.close()
            await http.aclose()
            await sessions.close()
            await store.close()

    # Readiness: Redis, the store's database, and the local model warm once when agents
    # default to it. A model server that goes away later (the local LLM, OpenAI) must not
    # take down agents on other providers; run failures say which provider is down.
    checks: dict[str, ReadyCheck] = {"database": store.ping}
    if uses_local_model(settings):
        checks["local_model"] = LocalModelWarm(
            f"http://{settings.local_llm.host}:{settings.local_llm.port}/readyz", http
        )
    app = create_service_app("WhisPTT agent service", bus, lifespan=lifespan, checks=checks)
    app.state.settings = settings
    app.state.runtime = runtime
    app.state.store = store
    app.state.caller_policy = CallerPolicy(
        token=settings.service_token, user_required=settings.mode != "local"
    )
    for router in (agents_router, runs_router, records_router, me_router):
        app.include_router(router)
    return app
