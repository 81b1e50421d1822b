"""What the tests need from the machine, and what happens when it is missing.

Locally a test whose tool (chromium, pulseaudio, Xvfb, tmux, ...) is missing is skipped
with the reason. Under CI (`CI=true`, as CI services set it) the same test *fails*: a green
CI run must mean every test ran, not that a third of the end-to-end suite quietly skipped.
Every test that cannot run somewhere goes through this module, so none can be forgotten:

- `needs_tools(*names, why=...)`: a mark (a module's `pytestmark`, or a decorator). It is
  checked in `pytest_runtest_setup` before any fixture is set up (as `skipif` is), so a
  missing browser never costs a stack boot.
- `require_tool(name, why)`: in a fixture or test body, the tool's path (or skip / fail).
- `unavailable(why)`: skip locally, fail under CI, for anything else a machine may lack
  (a PulseAudio that would not start, a sound card that makes a check meaningless).

This module is a pytest plugin too (`tests/conftest.py` loads it): it registers the
`needs_tools` marker and runs the check.
"""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest

CI_VALUES = frozenset({"1", "true", "yes", "on"})
MARKER = "needs_tools"


def in_ci() -> bool:
    """True when the run is CI's (`CI=true`; also 1/yes/on, any case)."""
    return os.environ.get("CI", "").strip().lower() in CI_VALUES


def unavailable(why: str) -> NoReturn:
    """This test cannot run here: a skip locally, a failure under CI."""
    if in_ci():
        pytest.fail(f"{why} [CI=true: a missing prerequisite fails the run]", pytrace=False)
    pytest.skip(why)


def missing_tools(*names: str) -> list[str]:
    """The `names` that are not programs on PATH."""
    return [name for name in names if shutil.which(name) is None]


def require_tool(name: str, why: str) -> str:
    """The path of the program `name`; if it is not on PATH, `unavailable` (skip or fail)."""
    path = shutil.which(name)
    if path is None:
        unavailable(f"{name} is not installed ({why}; see scripts/system-packages.txt)")
    return path


def require_tools(*names: str, why: str) -> None:
    """Every one of `names` on PATH, or `unavailable` naming all that are missing."""
    missing = missing_tools(*names)
    if missing:
        unavailable(f"{', '.join(missing)} not installed ({why}; see scripts/system-packages.txt)")


def needs_tools(*names: str, why: str) -> pytest.MarkDecorator:
    """Mark a test (or a module, through `pytestmark`) as needing these programs."""
    return getattr(pytest.mark, MARKER)(*names, why=why)


# --- the plugin ------------------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(*names, why): programs the test needs on PATH; missing ones skip the test "
        "locally and fail it under CI=true (tests/support/tools.py)",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Before any fixture of `item` (tryfirst, as pytest's own skip marks): its tools."""
    for mark in item.iter_markers(MARKER):
        require_tools(*mark.args, why=mark.kwargs.get("why", "needed by this test"))
