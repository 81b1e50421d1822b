"""A gateway on real HTTP with its own SQLite file and the session's Redis."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

from tests.gateway.server import serving
from whisp_gateway.app import create_app
from whisp_gateway.settings import GatewaySettings
from whisp_shared.bus import EventBus
from whisp_shared.config import BusSettings

GatewayFactory = Callable[..., AbstractContextManager[str]]


@pytest.fixture
def gateway(bus_settings: BusSettings, tmp_path: Path) -> GatewayFactory:
    """`with gateway(**settings) as url:` — a running gateway; settings overridable."""

    @contextmanager
    def run(**overrides: object) -> Iterator[str]:
        settings = GatewaySettings(
            database_url=f"sqlite+aiosqlite:///{tmp_path}/gateway.db",
            **overrides,  # type: ignore[arg-type]
        )
        app = create_app(settings, EventBus(bus_settings))
        with serving(app) as url:
            yield url

    return run
