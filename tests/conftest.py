"""Session fixtures: one private redis-server per test session, flushed between tests.

Also loads `tests.support.tools`: tests that need a program (chromium, tmux, ...) skip
without it locally and fail without it under CI=true."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

import pytest
from redis.asyncio import Redis

from whisp_cli.redis_server import RedisServer
from whisp_cli.stack import stop_processes
from whisp_shared.config import BusSettings

if TYPE_CHECKING:
    from whisp_transcription.engines.faster_whisper_engine import FasterWhisperEngine

pytest_plugins = ["tests.support.tools"]


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A real redis-server on a free port; never the machine's own 6379. Stopped on every
    way out (a start that times out too): its process group gets SIGTERM, then SIGKILL."""
    server = RedisServer()
    try:
        yield server.start()
    finally:
        if server.process is not None:
            stop_processes([server.process], timeout=10)
        server.close()


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_server.url)
    await client.flushall()
    yield client
    await client.aclose()


@pytest.fixture
def bus_settings(redis_server: RedisServer, redis: Redis) -> BusSettings:
    """Fast reclaim so failure paths run in a second, not half a minute."""
    return BusSettings(
        redis_url=redis_server.url, claim_idle_ms=400, max_deliveries=3, read_block_ms=100
    )


@pytest.fixture(scope="session")
def tiny_engine() -> FasterWhisperEngine:
    """tiny.en from the wheel, loaded once for the whole session (transcription and audio
    tests share it; imported lazily so tests that never transcribe never load it)."""
    from whisp_transcription.engines.faster_whisper_engine import FasterWhisperEngine
    from whisp_transcription.settings import FasterWhisperSettings

    engine = FasterWhisperEngine(FasterWhisperSettings())
    engine.load()
    return engine
