"""Checks of tests/support/tools.py: a missing tool skips locally and fails under CI=true,
before any fixture is set up.

The marker is checked in a child pytest run on a small test file, so what is seen is what a
real run reports (its outcome line and exit code), with a fixture that writes a file when
(it should never be) set up.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support.tools import in_ci, missing_tools, require_tool, require_tools, unavailable

REPO = Path(__file__).resolve().parents[2]
ABSENT = "whisp-no-such-tool-7f3a"

CHILD_TESTS = textwrap.dedent(
    f"""
    import os
    from pathlib import Path

    import pytest

    from tests.support.tools import needs_tools

    BOOTED = Path(os.environ["BOOT_FILE"])


    @pytest.fixture(scope="session")
    def expensive_stack():
        BOOTED.write_text("booted")  # what a missing tool must never cost
        yield "stack"


    @needs_tools("sh", {ABSENT!r}, why="a tool nobody has")
    def test_needs_a_missing_tool(expensive_stack):
        pass


    @needs_tools("sh", why="a tool every machine has")
    def test_needs_a_present_tool():
        pass
    """
)


@pytest.mark.parametrize("value", ["true", "1", "TRUE", "yes"])
def test_ci_is_recognised(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("CI", value)
    assert in_ci()


@pytest.mark.parametrize("value", ["", "false", "0"])
def test_not_ci(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("CI", value)
    assert not in_ci()


def test_a_present_tool_is_its_path() -> None:
    assert require_tool("sh", "a shell").endswith("/sh")
    assert missing_tools("sh", ABSENT) == [ABSENT]
    require_tools("sh", why="a shell")  # no raise


def test_a_missing_tool_skips_locally(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=f"{ABSENT} is not installed"):
        require_tool(ABSENT, "nothing")
    with pytest.raises(pytest.skip.Exception, match="no sound card"):
        unavailable("no sound card")


def test_a_missing_tool_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=f"{ABSENT} is not installed.*CI=true"):
        require_tool(ABSENT, "nothing")
    with pytest.raises(pytest.fail.Exception, match=f"{ABSENT} not installed"):
        require_tools("sh", ABSENT, why="nothing")
    with pytest.raises(pytest.fail.Exception, match="no sound card"):
        unavailable("no sound card")


def run_child(tmp_path: Path, ci: str | None) -> tuple[subprocess.CompletedProcess[str], Path]:
    folder = tmp_path / ("ci" if ci else "local")
    folder.mkdir()
    (folder / "test_child.py").write_text(CHILD_TESTS)
    boot = folder / "booted"
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env |= {"BOOT_FILE": str(boot), "PYTHONPATH": str(REPO)}
    if ci is not None:
        env["CI"] = ci
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.support.tools", "-p", "no:cacheprovider",
         "-rA", "-q", "--rootdir", str(folder), "-c", os.devnull, str(folder / "test_child.py")],
        capture_output=True, text=True, timeout=120, cwd=folder, env=env, check=False,
    )  # fmt: skip
    return done, boot


def test_the_marker_fails_the_run_under_ci_before_any_fixture(tmp_path: Path) -> None:
    done, boot = run_child(tmp_path, ci="true")
    out = done.stdout + done.stderr
    assert done.returncode == 1, out  # the run is red
    assert "1 passed" in out and "1 error" in out and "skipped" not in out, out
    assert f"{ABSENT} not installed (a tool nobody has" in out and "CI=true" in out, out
    assert not boot.exists(), "the session fixture was set up for a test that cannot run"


def test_the_marker_skips_locally_before_any_fixture(tmp_path: Path) -> None:
    done, boot = run_child(tmp_path, ci=None)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "1 passed" in out and "1 skipped" in out, out
    assert "SKIPPED [1] " in out and f"{ABSENT} not installed" in out, out
    assert not boot.exists()
