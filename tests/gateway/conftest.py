"""Gateways on real HTTP with the session's Redis; repositories on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from tests.gateway.postgres import PostgresProvider
from tests.gateway.server import serving
from whisp_gateway.app import create_app
from whisp_gateway.repository import SqlRepository
from whisp_gateway.settings import GatewaySettings
from whisp_shared.bus import EventBus
from whisp_shared.config import BusSettings


class Served(str):
    """A running gateway's base URL that also carries its app (for `app.state.hub` etc.)."""

    app: FastAPI

    def __new__(cls, url: str, app: FastAPI) -> Served:
        self = super().__new__(cls, url)
        self.app = app
        return self


GatewayFactory = Callable[..., AbstractContextManager[Served]]


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path}/gateway.db"


@pytest.fixture
def gateway(
    bus_settings: BusSettings,
    sqlite_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> GatewayFactory:
    """`with gateway(**settings) as url:` — a running gateway; settings overridable.

    `host="0.0.0.0"` listens on every address (the URL still points at 127.0.0.1);
    `consumer_name=` names the replica in the persistence group. The repository's
    config.yaml is not read: only the defaults and the overrides count."""
    config = tmp_path / "gateway-config.yaml"
    config.write_text("mode: local\n")
    monkeypatch.setenv("WHISP_CONFIG", str(config))

    @contextmanager
    def run(consumer_name: str | None = None, **overrides: object) -> Iterator[Served]:
        overrides.setdefault("database_url", sqlite_url)
        settings = GatewaySettings(**overrides)  # type: ignore[arg-type]
        app = create_app(settings, EventBus(bus_settings, consumer_name=consumer_name))
        with serving(app, host=settings.host) as url:
            yield Served(url, app)

    return run


async def add_users(database_url: str, *names: str) -> dict[str, str]:
    """Create users in a gateway's database (schema too); returns name -> token."""
    repo = SqlRepository(database_url)
    try:
        await repo.create_schema()
        return {name: (await repo.add_user(name))[1] for name in names}
    finally:
        await repo.close()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresProvider]:
    """PostgreSQL on demand: started (or found via DATABASE_URL) when a test first asks."""
    provider = PostgresProvider()
    yield provider
    provider.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, postgres: PostgresProvider
) -> AsyncIterator[str]:
    """The same test against a SQLite file and a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/repo.db"
        return
    async with postgres.database() as url:
        yield url


@pytest.fixture
async def repo(database_url: str) -> AsyncIterator[SqlRepository]:
    repository = SqlRepository(database_url)
    await repository.create_schema()
    yield repository
    await repository.close()


@pytest.fixture
async def publisher(bus_settings: BusSettings) -> AsyncIterator[EventBus]:
    """Publishes as the audio, transcription and agent services do (no consumers)."""
    bus = EventBus(bus_settings, consumer_name="test-publisher")
    await bus.connect()
    yield bus
    await bus.stop()


@dataclass(frozen=True)
class Signed:
    """A signed-in client of a running gateway and the user id it acts as."""

    client: httpx.AsyncClient
    id: str


@asynccontextmanager
async def signed_in(url: str, tokens: dict[str, str], *names: str) -> AsyncIterator[list[Signed]]:
    """One bearer-token client per user name, with the id the gateway gives it."""
    bearers = [{"Authorization": f"Bearer {tokens[name]}"} for name in names]
    clients = [httpx.AsyncClient(base_url=url, timeout=10, headers=h) for h in bearers]
    try:
        ids = [(await c.get("/api/me")).json()["user"]["id"] for c in clients]
        yield [Signed(c, i) for c, i in zip(clients, ids, strict=True)]
    finally:
        for c in clients:
            await c.aclose()
