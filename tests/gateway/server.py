"""Run an ASGI app under a real uvicorn server in a background thread (real HTTP, real SSE)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI

from whisp_cli.redis_server import free_port

WILDCARDS = ("0.0.0.0", "::")


@contextmanager
def serving(app: FastAPI, host: str = "127.0.0.1") -> Iterator[str]:
    """Yields the URL to reach the server (loopback when it listens on every address)."""
    port = free_port(host)
    server = uvicorn.Server(
        # Open SSE streams would hold a graceful shutdown for ever; tests close theirs.
        uvicorn.Config(
            app, host=host, port=port, log_config=None, lifespan="on", timeout_graceful_shutdown=3
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("server thread died while starting")
        if time.monotonic() > deadline:
            raise RuntimeError("server did not start")
        time.sleep(0.02)
    try:
        yield f"http://{'127.0.0.1' if host in WILDCARDS else host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
