"""Gateways as separate processes (`python -m whisp_gateway`), as ops run replicas."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx

from whisp_cli.redis_server import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
NOTHING_LISTENS = "http://127.0.0.1:9"  # the discard port: connections are refused


class GatewayProcess:
    def __init__(self, name: str, workdir: Path, env: dict[str, str]) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / f"{name}.log"
        config = workdir / "config.yaml"
        if not config.exists():
            config.write_text("mode: local\nweb:\n  host: 127.0.0.1\n")
        full_env = {
            **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL",)},
            "WHISP_CONFIG": str(config),
            "WHISP_WEB__HOST": "127.0.0.1",
            "WHISP_WEB__PORT": str(self.port),
            "WHISP_WEB__AUDIO_SERVICE_URL": NOTHING_LISTENS,
            "WHISP_WEB__AGENT_SERVICE_URL": NOTHING_LISTENS,
            "WHISP_BUS__READ_BLOCK_MS": "100",
            **env,
        }
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "whisp_gateway"],
                cwd=workdir,
                env=full_env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited:\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} not ready:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


@contextmanager
def gateway_processes(workdir: Path, count: int, env: dict[str, str]) -> Iterator[list[str]]:
    """`count` replicas started together; yields their base URLs; SIGTERM on the way out."""
    with ExitStack() as stack:
        procs = []
        for n in range(count):
            proc = GatewayProcess(f"gateway-{n}", workdir, env)
            stack.callback(proc.stop)
            procs.append(proc)
        for proc in procs:
            proc.wait_ready()
        yield [p.url for p in procs]
