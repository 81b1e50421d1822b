"""`whisp up` as a person runs it: everything ready, Ctrl+C leaves nothing behind."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.processes import WhispUp
from whisp_cli.redis_server import RedisServer

pytestmark = pytest.mark.e2e


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def _start(tmp_path: Path, workers: int, **kwargs: Any) -> WhispUp:
    return WhispUp(
        tmp_path / "data", tmp_path / "logs", workers=workers, up_timeout=120, **kwargs
    ).start()


@pytest.mark.parametrize("workers", [2, 3])
def test_up_brings_every_service_ready_and_ctrl_c_stops_all(tmp_path: Path, workers: int) -> None:
    up = _start(tmp_path, workers, unset=("REDIS_URL",))
    port = up.port
    try:
        banner = up.wait_up()
        urls = re.findall(r"(http://127\.0\.0\.1:\d+/readyz)", banner)
        names = re.findall(
            r"^\W*(audio|transcription-\d+|local-llm|agents|gateway)\b", banner, re.M
        )
        pids = [int(p) for p in re.findall(r"^\W*\S+\s+\W*(\d+)\s", banner, re.M)]
        assert sorted(names) == sorted(
            [
                "audio", "agents", "gateway", "local-llm",
                *(f"transcription-{i + 1}" for i in range(workers)),
            ]
        )  # fmt: skip
        assert len(urls) == workers + 4
        assert f"http://127.0.0.1:{port}/readyz" in urls
        assert len(pids) == workers + 5, banner  # services + redis
        for url in urls:
            response = httpx.get(url, timeout=5)
            assert response.status_code == 200, url
            checks = response.json()["checks"]
            assert checks.get("redis", checks.get("model")) is True, (url, checks)
        assert all(_alive(pid) for pid in pids)
    finally:
        up.stop(timeout=60)  # Ctrl+C
    out = up.output
    assert up.returncode == 0, out
    assert "Stopped." in out
    time.sleep(0.2)
    assert [pid for pid in pids if _alive(pid)] == []


def test_up_uses_redis_url_when_given_and_reports_a_dead_service(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    up = _start(tmp_path, 1, env={"REDIS_URL": redis_server.url})
    try:
        banner = up.wait_up()
        assert "external" in banner and redis_server.url in banner
        worker_pid = int(re.search(r"transcription-1\W+(\d+)", banner).group(1))  # type: ignore[union-attr]
        os.kill(worker_pid, signal.SIGKILL)
        up.wait(timeout=60)
    finally:
        if up.returncode is None:
            up.stop()
    out = up.output
    assert up.returncode == 1
    assert "transcription-1 exited" in out
    assert "Stopped." in out
