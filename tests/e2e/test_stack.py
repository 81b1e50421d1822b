"""`whisp up` as a person runs it: everything ready, Ctrl+C leaves nothing behind; a service
(or the private Redis) that dies is restarted while the others keep serving, one that keeps
crashing is given up on; `whisp status` shows the running stack."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis as redis_sync

from tests.support.processes import WhispUp, log_tails
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
    # --no-restart: the fail-fast mode, where the first exit ends the stack.
    up = _start(tmp_path, 1, env={"REDIS_URL": redis_server.url, "WHISP_UP_RESTART": "false"})
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


# --- supervision ---------------------------------------------------------------------------

SERVICES = r"redis|audio|transcription-\d+|local-llm|agents|gateway"


def _table_pids(text: str) -> dict[str, int]:
    """service -> pid from the last table rows in `text` (rows without a pid are left out)."""
    return {name: int(pid) for name, pid in re.findall(rf"^\W*({SERVICES})\W+(\d+)\s", text, re.M)}


def _status(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "whisp_cli.main", "status", "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )


def _status_json(data_dir: Path) -> dict[str, Any]:
    done = _status(data_dir, "--json")
    data: dict[str, Any] = json.loads(done.stdout)
    data["returncode"] = done.returncode
    return data


def _by_name(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {service["name"]: service for service in status["services"]}


def _wait_until(what: str, check: Callable[[], bool], up: WhispUp, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline or up.returncode is not None:
            raise AssertionError(f"{what}: not in {timeout:.0f}s\n{up.output}\n"
                                 f"{log_tails(up.log_dir)}")  # fmt: skip
        time.sleep(0.3)


def _processes_of(data_dir: Path) -> list[tuple[int, bytes]]:
    """(pid, command line) of the live processes of a stack on `data_dir` (its path is in
    their environment or command line): every service gets its data folders through the
    environment, Redis through --dir."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or not _alive(int(entry.name)):
            continue
        try:
            seen = (entry / "environ").read_bytes() + (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if str(data_dir).encode() in seen:
            found.append((int(entry.name), (entry / "cmdline").read_bytes()))
    return found


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_up_restarts_a_killed_worker_and_leaves_the_others_running(tmp_path: Path) -> None:
    up = _start(tmp_path, 2, unset=("REDIS_URL",))
    try:
        before = _table_pids(up.wait_up())
        assert len(before) == 7, up.banner
        os.kill(before["transcription-1"], signal.SIGKILL)
        _wait_until(
            "transcription-1 ready again", lambda: "transcription-1 is ready again" in up.output, up
        )
        out = up.output
        assert re.search(
            r"transcription-1 exited with code -9 \(SIGKILL\); restarting in 0\.5 s "
            r"\(attempt 1 of 4\)", out
        ), out  # fmt: skip
        reprinted = _table_pids(out.split("transcription-1 is ready again", 1)[1])
        after = _by_name(_status_json(tmp_path / "data"))
        new_pid = after["transcription-1"]["pid"]
        assert new_pid != before["transcription-1"] and _alive(new_pid)
        assert reprinted["transcription-1"] == new_pid
        assert after["transcription-1"]["restarts"] == 1
        assert after["transcription-1"]["health"] == "ready"
        assert _ready(after["transcription-1"]["url"])
        for name, pid in before.items():  # nothing else was touched
            if name != "transcription-1":
                assert after[name]["pid"] == pid and _alive(pid), name
                assert after[name]["restarts"] == 0, name
        assert "exited" not in out.replace("transcription-1 exited", ""), out
    finally:
        up.stop(timeout=60)
    assert up.returncode == 0, up.output
    time.sleep(0.2)
    assert [p for p in [*before.values(), new_pid] if _alive(p)] == []
    assert _processes_of(tmp_path / "data") == []


def test_up_gives_up_on_a_service_that_always_crashes_and_keeps_the_rest(tmp_path: Path) -> None:
    # A bad setting: the worker exits at every start (one whose model cannot load stays up,
    # not ready, and takes no work — tests/reliability/test_bad_model.py).
    env = {"WHISP_TRANSCRIPTION__ENGINE": "no-such-engine"}
    up = _start(tmp_path, 1, unset=("REDIS_URL",), env=env)
    try:
        banner = up.wait_up()
        for attempt, delay in enumerate(["0.5", "1", "2", "4"], start=1):
            assert (
                f"transcription-1 exited with code 1; restarting in {delay} s "
                f"(attempt {attempt} of 4)" in banner
            ), banner
        assert re.search(
            r"transcription-1 exited with code 1; it exited 5 times in a row before staying up "
            r"60 s: giving up on it; "
            r"the other services keep serving \(its log: .*transcription-1\.log\)", banner
        ), banner  # fmt: skip
        assert re.search(r"^\W*transcription-1\W+-\W+gave up\b", banner, re.M), banner
        serving = _table_pids(banner)
        assert sorted(serving) == ["agents", "audio", "gateway", "local-llm", "redis"], banner
        time.sleep(3)
        status = _status_json(tmp_path / "data")
        assert status["returncode"] == 1  # running, not all ready
        services = _by_name(status)
        assert services["transcription-1"]["state"] == "gave up"
        assert services["transcription-1"]["pid"] is None
        assert services["transcription-1"]["restarts"] == 4
        for name, pid in serving.items():
            assert services[name]["pid"] == pid and _alive(pid), name
            assert services[name]["health"] == "ready", services[name]
        assert _ready(up.url)
        assert up.output.count("giving up") == 1
    finally:
        up.stop(timeout=60)
    assert up.returncode == 0, up.output
    time.sleep(0.2)
    assert [pid for pid in serving.values() if _alive(pid)] == []


def test_status_lists_every_service_and_says_not_running_after_ctrl_c(tmp_path: Path) -> None:
    data = tmp_path / "data"
    up = _start(tmp_path, 1, unset=("REDIS_URL",))
    try:
        pids = _table_pids(up.wait_up())
        done = _status(data)
        assert done.returncode == 0, done.stdout + done.stderr
        rows = re.findall(
            rf"^\W*({SERVICES})\W+(\d+)\W+(\d+)\W+ready\W+ready\W+0\b", done.stdout, re.M
        )
        assert {name: int(pid) for name, pid, _port in rows} == pids, done.stdout
        ports = {name: int(port) for name, _pid, port in rows}
        assert ports["gateway"] == up.port
        assert f"WhisPTT is running: {up.url}/" in done.stdout
        services = _by_name(_status_json(data))
        for name, port in ports.items():
            assert services[name]["port"] == port
            if name != "redis":
                assert services[name]["url"] == f"http://127.0.0.1:{port}"
    finally:
        up.stop(timeout=60)
    assert up.returncode == 0, up.output
    done = _status(data)
    assert done.returncode == 3, done.stdout
    assert "WhisPTT is not running" in done.stdout


def test_a_killed_supervisor_leaves_no_service_and_status_calls_it_stale(tmp_path: Path) -> None:
    data = tmp_path / "data"
    up = _start(tmp_path, 1, unset=("REDIS_URL",))
    try:
        pids = _table_pids(up.wait_up())
        os.kill(up.pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while any(_alive(pid) for pid in pids.values()) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert [name for name, pid in pids.items() if _alive(pid)] == []
    finally:
        up.stop(timeout=10)
        for pid, _cmd in _processes_of(data):  # only when the test failed
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    done = _status(data)
    assert done.returncode == 3, done.stdout
    assert "WhisPTT is not running (stale state" in done.stdout
    assert "still running" not in done.stdout


def test_up_restarts_a_killed_private_redis_on_its_port_with_its_data(tmp_path: Path) -> None:
    up = _start(tmp_path, 1, unset=("REDIS_URL",))
    try:
        pids = _table_pids(up.wait_up())
        before = _by_name(_status_json(tmp_path / "data"))["redis"]
        client = redis_sync.Redis.from_url(before["url"])
        entry = client.xadd("whisp:test:accepted", {"data": "accepted before the crash"})
        os.kill(pids["redis"], signal.SIGKILL)
        _wait_until("redis ready again", lambda: "redis is ready again" in up.output, up)
        assert re.search(
            r"redis exited with code -9 \(SIGKILL\); restarting in 0\.5 s \(attempt 1 of 4\)",
            up.output,
        ), up.output
        after = _by_name(_status_json(tmp_path / "data"))
        assert after["redis"]["port"] == before["port"] and after["redis"]["url"] == before["url"]
        assert after["redis"]["pid"] != pids["redis"] and after["redis"]["restarts"] == 1
        assert client.xrange("whisp:test:accepted") == [
            (entry, {b"data": b"accepted before the crash"})
        ]
        client.close()
        urls = [s["url"] for name, s in after.items() if name != "redis"]
        _wait_until("every service ready again", lambda: all(_ready(u) for u in urls), up, 60)
        assert up.returncode is None
    finally:
        up.stop(timeout=60)
    assert up.returncode == 0, up.output


def test_giving_up_on_the_gateway_ends_the_stack_and_leaves_nothing(tmp_path: Path) -> None:
    # A setting the gateway refuses at start: it exits every time, the rest would run.
    up = _start(tmp_path, 1, unset=("REDIS_URL",), env={"WHISP_WEB__RATE_BURST": "0"})
    try:
        code = up.wait(timeout=240)
    finally:
        if up.returncode is None:
            up.stop()
    out = up.output
    assert code == 1, out
    assert "gateway exited with code 1; restarting in 4 s (attempt 4 of 4)" in out
    assert re.search(
        r"Stack failed: gateway exited with code 1; it exited 5 times in a row before staying "
        r"up 60 s: giving up on it, and without the gateway nothing can reach the stack; "
        r"stopping the stack", out
    ), out  # fmt: skip
    assert "Stopped." in out
    assert _status(tmp_path / "data").returncode == 3
    time.sleep(0.2)
    assert _processes_of(tmp_path / "data") == []
