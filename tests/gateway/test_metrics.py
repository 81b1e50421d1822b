"""The gateway's Prometheus metrics: requests by route template and status, open SSE
clients, and store → forward lag."""

from __future__ import annotations

import re

import httpx

from tests.gateway import sse
from tests.gateway.conftest import GatewayFactory
from tests.gateway.factories import transcribed
from tests.gateway.test_sse import connections
from tests.integration.bus_helpers import wait_for
from whisp_shared.bus import EventBus
from whisp_shared.streams import TRANSCRIPTS


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample of `name` with exactly these labels (0 if absent)."""
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}(?:\{{(.*)\}})? (\S+)", line)
        if not match:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1) or ""))
        if found == labels:
            return float(match.group(2))
    return 0.0


async def test_requests_sse_clients_and_forward_lag_are_measured(
    gateway: GatewayFactory, publisher: EventBus
) -> None:
    route = {"method": "GET", "route": "/api/transcripts/{recording_id}", "status": "404"}
    with gateway() as url:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            before = (await client.get("/metrics")).text
            for rid in ("nope-1", "nope-2"):  # two ids, one label set: ids never become labels
                assert (await client.get(f"/api/transcripts/{rid}")).status_code == 404
            lag_before = sample(before, "whisp_gateway_forward_lag_seconds_count")
            async with sse.events(client) as stream:
                await connections(url, 1)
                await publisher.publish(TRANSCRIPTS, transcribed("m1", "hello", "local"))
                await stream.next()
                during = (await client.get("/metrics")).text

            async def closed() -> bool:
                text = (await client.get("/metrics")).text
                return sample(text, "whisp_gateway_sse_clients") == 0

            await wait_for(closed, timeout=10)
    assert sample(during, "whisp_gateway_requests_total", **route) == (
        sample(before, "whisp_gateway_requests_total", **route) + 2
    )
    assert "nope-1" not in during
    assert sample(during, "whisp_gateway_sse_clients") == 1
    assert sample(during, "whisp_gateway_forward_lag_seconds_count") == lag_before + 1
