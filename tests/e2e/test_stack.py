"""`whisp up` as a person runs it: everything ready, Ctrl+C leaves nothing behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from whisp_cli.redis_server import RedisServer, free_port

pytestmark = pytest.mark.e2e


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def _read_until_up(proc: subprocess.Popen[str], timeout: float = 120) -> str:
    assert proc.stdout is not None
    seen = ""
    deadline = time.monotonic() + timeout
    while "WhisPTT is up" not in seen:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            raise AssertionError(f"whisp up exited ({proc.returncode}):\n{seen}")
        seen += line
        assert time.monotonic() < deadline, f"not up in {timeout}s:\n{seen}"
    return seen


def _start(tmp_path: Path, *args: str, env: dict[str, str] | None = None):
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "whisp_cli.main",
            "up",
            "--port",
            str(port),
            "--data-dir",
            str(tmp_path / "data"),
            "--log-dir",
            str(tmp_path / "logs"),
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )
    return proc, port


@pytest.mark.parametrize("workers", [2, 3])
def test_up_brings_every_service_ready_and_ctrl_c_stops_all(tmp_path: Path, workers: int) -> None:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    proc, port = _start(tmp_path, "--workers", str(workers), env=env)
    try:
        banner = _read_until_up(proc)
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
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "Stopped." in out
    time.sleep(0.2)
    assert [pid for pid in pids if _alive(pid)] == []


def test_up_uses_redis_url_when_given_and_reports_a_dead_service(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    proc, _port = _start(tmp_path, "--workers", "1", env={"REDIS_URL": redis_server.url})
    try:
        banner = _read_until_up(proc)
        assert "external" in banner and redis_server.url in banner
        worker_pid = int(re.search(r"transcription-1\W+(\d+)", banner).group(1))  # type: ignore[union-attr]
        os.kill(worker_pid, signal.SIGKILL)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1
    assert "transcription-1 exited" in out
    assert "Stopped." in out
