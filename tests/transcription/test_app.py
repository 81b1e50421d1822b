"""The worker's HTTP face: the shared ops routes, and the shared error body for anything else."""

from __future__ import annotations

import httpx

from tests.transcription.conftest import WorkerFactory


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
