"""Checks of the process harness (tests/support/processes.py) on a tiny fake service.

The fake (`python -m fake_service`, written into the test's folder) answers `/readyz` like
a WhisPTT service and starts a grandchild in its own process group, so a stop that only
signals the service's PID would leave that grandchild behind. Modes: `ok`, `stubborn`
(service and grandchild ignore SIGTERM), `crash` (exits at once), `never` (never ready).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.processes import (
    ServiceError,
    Services,
    WhispUp,
    kill_tree,
    log_tails,
    service,
)
from whisp_cli.redis_server import free_port
from whisp_cli.stack import ServiceSpec

FAKE = textwrap.dedent(
    """
    import http.server, os, signal, subprocess, sys

    mode = os.environ.get("FAKE_MODE", "ok")
    print(f"fake service {os.getpid()} mode {mode}", flush=True)
    if mode == "crash":
        sys.exit(3)
    ignore = "signal.signal(signal.SIGTERM, signal.SIG_IGN); " if mode == "stubborn" else ""
    child = subprocess.Popen(
        [sys.executable, "-c", f"import signal, time; {ignore}time.sleep(600)"]
    )
    with open(os.environ["FAKE_PIDS"], "a") as pids:
        pids.write(f"{os.getpid()} {child.pid}\\n")
    if mode == "stubborn":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            ready = self.path == "/readyz" and mode != "never"
            self.send_response(200 if ready else 503)
            self.end_headers()

        def log_message(self, *args):
            pass

    port = int(os.environ["WHISP_FAKE__PORT"])
    http.server.HTTPServer((os.environ["WHISP_FAKE__HOST"], port), Handler).serve_forever()
    """
)


@pytest.fixture
def fake(tmp_path: Path) -> tuple[Path, Path]:
    """(folder holding fake_service.py, file the fakes append "pid grandchild-pid" to)."""
    code = tmp_path / "code"
    code.mkdir()
    (code / "fake_service.py").write_text(FAKE)
    return code, tmp_path / "pids.txt"


@pytest.fixture
def made() -> Iterator[list[Services]]:
    """Services a failure-path test made, stopped at its end whatever happened: a check of
    the harness that fails must not leave fakes running."""
    made: list[Services] = []
    yield made
    for services in made:
        services.stop()


def fake_spec(fake: tuple[Path, Path], name: str, mode: str = "ok") -> ServiceSpec:
    code, pids = fake
    env = {"PYTHONPATH": str(code), "FAKE_MODE": mode, "FAKE_PIDS": str(pids)}
    return ServiceSpec(name, "fake_service", "fake", free_port(), tuple(env.items()))


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def recorded_pids(pids_file: Path) -> list[int]:
    if not pids_file.exists():
        return []
    return [int(p) for line in pids_file.read_text().splitlines() for p in line.split()]


def all_gone(pids: list[int], timeout: float = 5.0) -> bool:
    """Orphaned grandchildren are reaped by init a moment after their SIGKILL."""
    deadline = time.monotonic() + timeout
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not any(alive(pid) for pid in pids)


def test_services_start_ready_expose_and_stop_whole_groups(
    fake: tuple[Path, Path], tmp_path: Path
) -> None:
    specs = [fake_spec(fake, "one"), fake_spec(fake, "two")]
    with Services(specs, log_dir=tmp_path / "logs") as services:
        assert [s.name for s in services] == ["one", "two"] and len(services) == 2
        one = services["one"]
        assert one.port == specs[0].port and one.url == f"http://127.0.0.1:{one.port}"
        assert httpx.get(f"{one.url}/readyz").status_code == 200
        assert one.log == tmp_path / "logs" / "one.log"
        assert f"fake service {one.pid} mode ok" in one.log_text()
        assert one.returncode is None
        assert services.ready_s > 0
        pids = recorded_pids(fake[1])
        assert len(pids) == 4 and all(alive(pid) for pid in pids)
    assert all_gone(pids), [pid for pid in pids if alive(pid)]
    assert services["one"].returncode == 0 and services["two"].returncode == 0
    services.stop()  # a second stop is harmless


def test_a_process_that_ignores_sigterm_is_killed_with_its_group(
    fake: tuple[Path, Path], tmp_path: Path
) -> None:
    services = Services([fake_spec(fake, "stubborn", "stubborn")], log_dir=tmp_path, stop_timeout=1)
    with services:
        pids = recorded_pids(fake[1])
        assert len(pids) == 2
    assert services["stubborn"].returncode == -9
    assert all_gone(pids), [pid for pid in pids if alive(pid)]


def test_one_service_stopped_on_its_own(fake: tuple[Path, Path], tmp_path: Path) -> None:
    with Services([fake_spec(fake, "a"), fake_spec(fake, "b")], log_dir=tmp_path) as services:
        pairs = [line.split() for line in fake[1].read_text().splitlines()]
        children = {int(pid): int(child) for pid, child in pairs}
        a, b = services["a"].pid, services["b"].pid
        b_pids = [b, children[b]]
        assert services["a"].stop() == 0
        assert all_gone([a, children[a]])
        assert all(alive(pid) for pid in b_pids)
    assert all_gone(b_pids)


def test_the_nth_service_dying_at_start_stops_the_ones_before(
    fake: tuple[Path, Path], tmp_path: Path, made: list[Services]
) -> None:
    specs = [fake_spec(fake, "first"), fake_spec(fake, "second"), fake_spec(fake, "bad", "crash")]
    made.append(services := Services(specs, log_dir=tmp_path))
    with pytest.raises(ServiceError, match="bad exited with code 3") as raised:
        services.start()
    assert "fake service" in str(raised.value) and "--- bad.log" in str(raised.value)
    pids = recorded_pids(fake[1])
    assert len(pids) <= 4  # the first two, if they got that far
    assert all_gone(pids), [pid for pid in pids if alive(pid)]


def test_a_service_never_ready_times_out_and_everything_stops(
    fake: tuple[Path, Path], tmp_path: Path, made: list[Services]
) -> None:
    specs = [fake_spec(fake, "fine"), fake_spec(fake, "slow", "never")]
    made.append(services := Services(specs, log_dir=tmp_path, ready_timeout=1.5))
    with pytest.raises(ServiceError, match="not ready after 2s: slow"):
        services.start()
    pids = recorded_pids(fake[1])
    assert len(pids) == 4
    assert all_gone(pids), [pid for pid in pids if alive(pid)]
    assert all(s.returncode is not None for s in services)


def test_a_spawn_failing_part_way_stops_the_ones_already_started(
    fake: tuple[Path, Path], tmp_path: Path, made: list[Services]
) -> None:
    # An environment value with a NUL byte in it: Popen refuses the second spawn.
    broken = fake_spec(fake, "broken")
    broken = ServiceSpec(broken.name, broken.module, broken.section, broken.port,
                         (*broken.env, ("FAKE_BROKEN", "a\0b")))  # fmt: skip
    made.append(services := Services([fake_spec(fake, "started"), broken], log_dir=tmp_path))
    with pytest.raises(ValueError, match="null byte"):
        services.start()
    assert [s.name for s in services] == ["started"]
    assert services["started"].returncode is not None
    assert all_gone(recorded_pids(fake[1]))


def test_service_specs_come_from_the_launchers_plan() -> None:
    gateway = service("gateway", name="gateway-0", env={"WHISP_WEB__RATE_BURST": "3"})
    assert (gateway.name, gateway.module, gateway.section) == ("gateway-0", "whisp_gateway", "web")
    assert gateway.env == (("WHISP_WEB__RATE_BURST", "3"),) and gateway.port > 0
    worker = service("transcription", port=1234)
    assert (worker.name, worker.module, worker.port) == (
        "transcription",
        "whisp_transcription",
        1234,
    )
    assert service("local-llm").section == "agents__local_llm"
    assert service("audio").module == "whisp_audio" and service("agents").module == "whisp_agent"
    with pytest.raises(KeyError):
        service("no-such-service")


def test_log_tails(tmp_path: Path) -> None:
    (tmp_path / "a.log").write_text("\n".join(f"line {i}" for i in range(30)))
    (tmp_path / "b.log").write_text("only\n")
    (tmp_path / "c.txt").write_text("not a log\n")
    tails = log_tails(tmp_path, lines=2)
    assert tails == "--- a.log\nline 28\nline 29\n--- b.log\nonly"


def test_kill_tree_reaches_children_in_sessions_of_their_own(tmp_path: Path) -> None:
    """What WhispUp does to a supervisor that does not stop: its services lead their own
    sessions (as `whisp up`'s do), so killing its group alone would leave them running."""
    pids_file = tmp_path / "pids"
    supervisor = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import subprocess, sys, time
            child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"],
                                     start_new_session=True)
            open({str(pids_file)!r}, "w").write(str(child.pid))
            time.sleep(600)
        """)],
        start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while not (pids_file.exists() and pids_file.read_text()):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    child = int(pids_file.read_text())
    assert alive(child)
    kill_tree(supervisor)
    assert supervisor.returncode == -9
    assert all_gone([child])


def test_whisp_up_that_exits_before_its_banner_is_reported(tmp_path: Path) -> None:
    """`whisp up --workers 0` is refused at once: the error carries its output."""
    up = WhispUp(tmp_path / "data", tmp_path / "logs", workers=0, up_timeout=30)
    with pytest.raises(ServiceError, match=r"whisp up exited \(2\)") as raised, up:
        pass
    assert "--workers" in str(raised.value)
    assert up.returncode == 2 and not up.killed
