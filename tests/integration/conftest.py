"""Buses for the integration tests, each stopped at the end of its test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from whisp_shared.bus import Consumer, EventBus
from whisp_shared.config import BusSettings


@pytest.fixture
async def make_bus(bus_settings: BusSettings) -> AsyncIterator[Callable[..., EventBus]]:
    """`make_bus(name, *consumers, **settings)`: a bus on the session's Redis (settings
    override the fast-reclaim test defaults); not started."""
    started: list[EventBus] = []

    def make(name: str, *consumers: Consumer, **settings: object) -> EventBus:
        bus = EventBus(bus_settings.model_copy(update=settings), consumer_name=name)
        for c in consumers:
            bus.consume(c)
        started.append(bus)
        return bus

    yield make
    for bus in started:
        await bus.stop()
