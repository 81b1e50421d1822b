"""The harness's fault tools (`Services.kill`, `restart`, `add`, `wait_ready`) on the tiny
fake service of tests/support/test_processes.py: quick, no WhisPTT service involved."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.processes import ServiceError, Services
from tests.support.test_processes import FAKE, alive, all_gone, fake_spec, recorded_pids


@pytest.fixture
def fake(tmp_path: Path) -> tuple[Path, Path]:
    code = tmp_path / "code"
    code.mkdir()
    (code / "fake_service.py").write_text(FAKE)
    return code, tmp_path / "pids.txt"


@pytest.fixture
def made() -> Iterator[list[Services]]:
    made: list[Services] = []
    yield made
    for services in made:
        services.stop()


def test_kill_takes_the_whole_group_and_restart_comes_back_on_the_same_port(
    fake: tuple[Path, Path], tmp_path: Path
) -> None:
    with Services([fake_spec(fake, "one"), fake_spec(fake, "two")], log_dir=tmp_path) as s:
        first = s["one"]
        pairs = recorded_pids(fake[1])  # service, grandchild; one line each, in any order
        by_service = dict(zip(pairs[::2], pairs[1::2], strict=True))
        ones = [first.pid, by_service[first.pid]]
        others = [p for pid, child in by_service.items() if pid != first.pid for p in (pid, child)]
        assert s.kill("one") == -9
        assert all_gone(ones), "the killed service's grandchild outlived it"
        assert others and all(alive(pid) for pid in others)
        with pytest.raises(ServiceError, match="still running"):
            s.restart("two")
        again = s.restart("one")
        assert again.port == first.port and again.pid != first.pid
        assert httpx.get(f"{again.url}/readyz").status_code == 200
        assert s["one"] is again and len(s) == 2
        pids = recorded_pids(fake[1])
    assert all_gone(pids), [pid for pid in pids if alive(pid)]  # the restarted one stops too


def test_add_without_waiting_and_wait_ready(
    fake: tuple[Path, Path], tmp_path: Path, made: list[Services]
) -> None:
    made.append(s := Services([fake_spec(fake, "base")], log_dir=tmp_path).start())
    never = s.add(fake_spec(fake, "never", "never"), ready=False)
    assert never.returncode is None
    with pytest.raises(ServiceError, match="never not ready after 1s"):
        s.wait_ready("never", timeout=1.0)
    crash = s.add(fake_spec(fake, "crash", "crash"), ready=False)
    with pytest.raises(ServiceError, match=r"crash exited with code 3(.|\n)*fake service"):
        s.wait_ready("crash", timeout=10)
    assert crash.returncode == 3
    late = s.add(fake_spec(fake, "late"))
    assert httpx.get(f"{late.url}/readyz").status_code == 200
    s.stop()
    assert all_gone(recorded_pids(fake[1]))
