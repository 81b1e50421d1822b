"""1,000 SSE clients on one gateway process: delivery latency and memory per connection.

Each client is its own user (its own token), so every event must reach exactly one
connection. Latency is measured from the moment the result is XADDed to
`whisp:transcripts` (the worker's publish) to its arrival at the right client: it
includes the gateway's persistence hop (store in SQLite, forward to user-events) and
the fan-out. The raw engine baseline is a bare XADD -> XREAD hop on the same Redis.
Bounded: loopback only, a fixed number of clients and events, hard timeouts.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import resource
import statistics
import time
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from tests.integration.bus_helpers import recording, transcript_for
from tests.support.processes import Services, service
from whisp_cli.redis_server import RedisServer
from whisp_gateway.repository import SqlRepository
from whisp_shared.codec import encode_entry
from whisp_shared.streams import TRANSCRIPTS

pytestmark = pytest.mark.bench

CLIENTS = 1000
EVENTS = 300
RESULTS = Path(__file__).parent / "results"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def make_users(db: Path, n: int) -> list[tuple[str, str]]:
    repo = SqlRepository(f"sqlite+aiosqlite:///{db}")
    await repo.create_schema()
    users = []
    for i in range(n):
        user, token = await repo.add_user(f"user{i:04d}")
        users.append((user.id, token))
    await repo.close()
    return users


async def raw_hop_latencies(redis: Redis, n: int) -> list[float]:
    """Bare XADD -> blocking XREAD on the same server: the floor for any delivery."""
    stream = "bench:raw-hop"
    out: list[float] = []
    last = "$"
    for _ in range(n):
        reader = asyncio.create_task(redis.xread({stream: last}, block=2000, count=1))
        await asyncio.sleep(0.002)
        sent = time.perf_counter()
        await redis.xadd(stream, {"t": "x"})
        reply = await reader
        out.append((time.perf_counter() - sent) * 1000)
        last = reply[0][1][-1][0]
    return out


async def test_sse_fan_out_to_1000_clients(redis_server: RedisServer, redis: Redis, tmp_path: Path):
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    db = tmp_path / "gateway.db"
    users = await make_users(db, CLIENTS)
    gateway_spec = service(
        "gateway",
        env={
            "WHISP_WEB__DATABASE_URL": f"sqlite+aiosqlite:///{db}",
            "WHISP_LOGGING__LEVEL": "WARNING",
            "WHISP_BUS__READ_BLOCK_MS": "1000",
        },
    )
    base = gateway_spec.url
    received: dict[str, float] = {}
    wrong_user: list[str] = []
    connected = asyncio.Event()
    open_count = 0
    services = Services(
        [gateway_spec], log_dir=tmp_path, redis_url=redis_server.url, stop_timeout=30
    )
    try:
        gateway = (await asyncio.to_thread(services.start))["gateway"]
        rss_idle = rss_mb(gateway.pid)

        limits = httpx.Limits(max_connections=CLIENTS + 10, max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=base, timeout=None, limits=limits) as client:

            async def listen(user_id: str, token: str) -> None:
                nonlocal open_count
                headers = {"Authorization": f"Bearer {token}"}
                async with client.stream("GET", "/api/events", headers=headers) as response:
                    assert response.status_code == 200
                    open_count += 1
                    if open_count == CLIENTS:
                        connected.set()
                    async for line in response.aiter_lines():
                        if line.startswith("data:"):
                            event = json.loads(line[5:])
                            if event["user_id"] != user_id:
                                wrong_user.append(event["recording_id"])
                            received[event["recording_id"]] = time.perf_counter()

            listeners = [asyncio.create_task(listen(uid, tok)) for uid, tok in users]
            await asyncio.wait_for(connected.wait(), 120)
            await asyncio.sleep(1.0)
            rss_connected = rss_mb(gateway.pid)

            sent: dict[str, float] = {}
            rng = random.Random(7)
            for i in range(EVENTS):
                user_id, _ = rng.choice(users)
                event = transcript_for(recording(f"bench-{i}", user_id=user_id), "bench text")
                fields = encode_entry(event)
                sent[event.recording_id] = time.perf_counter()
                await redis.xadd(TRANSCRIPTS, fields)  # type: ignore[arg-type]
                await asyncio.sleep(0.01)
            deadline = time.monotonic() + 30
            while len(received) < EVENTS and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            for task in listeners:
                task.cancel()
            await asyncio.gather(*listeners, return_exceptions=True)
    finally:
        services.stop()

    latencies = [(received[r] - sent[r]) * 1000 for r in sent if r in received]
    raw = await raw_hop_latencies(redis, 200)
    result = {
        "clients": CLIENTS,
        "events": EVENTS,
        "delivered": len(latencies),
        "misdelivered": len(wrong_user),
        "latency_ms": {
            "p50": statistics.median(latencies),
            "p99": percentile(latencies, 0.99),
            "max": max(latencies),
        },
        "raw_redis_hop_ms": {"p50": statistics.median(raw), "p99": percentile(raw, 0.99)},
        "ratio_p50_vs_raw_hop": statistics.median(latencies) / statistics.median(raw),
        "gateway_rss_mb": {"idle": rss_idle, "with_clients": rss_connected},
        "memory_per_connection_kb": (rss_connected - rss_idle) * 1024 / CLIENTS,
        "machine": {"cpus": os.cpu_count()},
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "gateway_sse.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    assert result["misdelivered"] == 0
    assert result["delivered"] == EVENTS
