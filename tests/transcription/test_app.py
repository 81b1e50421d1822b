"""The worker's HTTP face: the shared ops routes, and the shared error body for anything else."""

from __future__ import annotations

import httpx

from tests.integration.bus_helpers import depth_exported, wait_for
from tests.transcription.conftest import WorkerFactory
from tests.unit.k8s_render import keda_watches
from whisp_shared.bus_depth import GROUP_LAG, GROUP_PENDING


async def test_ready_once_the_model_is_loaded(running_worker: WorkerFactory) -> None:
    async with running_worker() as app:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://worker") as client:
            ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"redis": True, "model": True}


async def test_unknown_paths_get_the_shared_error_body(running_worker: WorkerFactory) -> None:
    async with running_worker() as app:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://worker") as client:
            missing = await client.get("/audio/r1")
    assert missing.status_code == 404
    assert missing.json() == {
        "code": "not_found",
        "message": "no such resource",
        "retryable": False,
    }


async def test_exports_lag_and_pending_of_every_stream_keda_watches(
    running_worker: WorkerFactory,
) -> None:
    """The dashboard shows what KEDA scales on: a lag and a pending series for each
    (stream, group) a trigger of the transcription ScaledObject reads."""
    watched = keda_watches("transcription")
    assert len(watched) == 3  # uploads, clips, live
    GROUP_LAG.clear()
    GROUP_PENDING.clear()
    async with running_worker():
        await wait_for(lambda: depth_exported(watched))
