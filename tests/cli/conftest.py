"""Fixtures for the desk-interface tests: the whole stack (`whisp up`) once per session,
and a spoken clip.

Set WHISP_E2E_GATEWAY_URL to run the end-to-end tests against a stack that is already
up instead of starting one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.speech import SENTENCES, Utterance, synthesize
from whisp_cli.redis_server import free_port

REPO = Path(__file__).resolve().parents[2]
UP_TIMEOUT_S = 180


@dataclass(frozen=True)
class DeskStack:
    url: str
    logs: Path | None = None

    def tail(self, lines: int = 15) -> str:
        """The services' last log lines, for a failing test's message."""
        return "" if self.logs is None else _tail(self.logs, lines)


def _tail(folder: Path, lines: int = 15) -> str:
    parts = []
    for log in sorted(folder.glob("*.log")):
        text = log.read_text(errors="replace").splitlines()[-lines:]
        parts.append(f"--- {log.name}\n" + "\n".join(text))
    return "\n".join(parts)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DeskStack]:
    """`whisp up --workers 1` as a person runs it; Ctrl+C (SIGINT) at the end."""
    external = os.environ.get("WHISP_E2E_GATEWAY_URL")
    if external:
        yield DeskStack(external.rstrip("/"))
        return
    root = tmp_path_factory.mktemp("stack")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    # These tests upload a dozen clips in a minute; the default limit is for people.
    env |= {"WHISP_WEB__RATE_LIMIT": "100000/hour", "WHISP_WEB__RATE_BURST": "1000"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "whisp_cli.main", "up", "--workers", "1", "--port", str(port),
         "--data-dir", str(root / "data"), "--log-dir", str(root / "logs")],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**env, "COLUMNS": "200"},
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        seen, deadline = "", time.monotonic() + UP_TIMEOUT_S
        while "WhisPTT is up" not in seen:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                pytest.fail(f"whisp up exited ({proc.returncode}):\n{seen}\n{_tail(root / 'logs')}")
            seen += line
            if time.monotonic() > deadline:
                pytest.fail(f"whisp up not ready in {UP_TIMEOUT_S}s:\n{seen}")
        yield DeskStack(f"http://127.0.0.1:{port}", root / "logs")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()


@pytest.fixture(scope="session")
def spoken(tmp_path_factory: pytest.TempPathFactory) -> tuple[Utterance, Path]:
    """About 4.6 s of espeak-ng speech, 16 kHz mono WAV."""
    utterance = next(u for u in SENTENCES if u.id == "late-for-dinner")
    return utterance, synthesize(utterance, tmp_path_factory.mktemp("speech"))
