"""Gateways as separate processes (`python -m whisp_gateway`), as ops run replicas."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.processes import Services, service

NOTHING_LISTENS = "http://127.0.0.1:9"  # the discard port: connections are refused


@contextmanager
def gateway_processes(workdir: Path, count: int, env: dict[str, str]) -> Iterator[list[str]]:
    """`count` replicas started together; yields their base URLs; SIGTERM on the way out."""
    config = workdir / "config.yaml"
    if not config.exists():
        config.write_text("mode: local\nweb:\n  host: 127.0.0.1\n")
    specs = [
        service(
            "gateway",
            name=f"gateway-{n}",
            env={
                "WHISP_CONFIG": str(config),
                "WHISP_WEB__AUDIO_SERVICE_URL": NOTHING_LISTENS,
                "WHISP_WEB__AGENT_SERVICE_URL": NOTHING_LISTENS,
                "WHISP_BUS__READ_BLOCK_MS": "100",
                **env,
            },
        )
        for n in range(count)
    ]
    with Services(
        specs, log_dir=workdir, cwd=workdir, unset=("DATABASE_URL",), stop_timeout=15
    ) as gateways:
        yield [gateway.url for gateway in gateways]
