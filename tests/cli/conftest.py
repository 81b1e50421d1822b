"""Fixtures for the desk-interface tests: the whole stack (`whisp up`) once per session,
and a spoken clip.

Set WHISP_E2E_GATEWAY_URL to run the end-to-end tests against a stack that is already
up instead of starting one.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.processes import WhispUp, log_tails
from tests.support.speech import SENTENCES, Utterance, synthesize

REPO = Path(__file__).resolve().parents[2]
UP_TIMEOUT_S = 180


@dataclass(frozen=True)
class DeskStack:
    url: str
    logs: Path | None = None

    def tail(self, lines: int = 15) -> str:
        """The services' last log lines, for a failing test's message."""
        return "" if self.logs is None else log_tails(self.logs, lines)

    def uploads(self) -> float:
        """Uploads the gateway answered so far (its request counter, POST /api/recordings)."""
        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        return sum(float(v) for v in re.findall(UPLOADS, text, re.M))

    def history(self) -> list[str]:
        """The recording ids in the caller's history, newest first."""
        found = httpx.get(f"{self.url}/api/transcripts", params={"limit": 100}, timeout=10)
        return [t["recording_id"] for t in found.json()["items"]]


UPLOADS = r'^whisp_gateway_requests_total\{method="POST",route="/api/recordings",[^}]*\} (\S+)$'


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DeskStack]:
    """`whisp up --workers 1` as a person runs it; Ctrl+C (SIGINT) at the end."""
    external = os.environ.get("WHISP_E2E_GATEWAY_URL")
    if external:
        yield DeskStack(external.rstrip("/"))
        return
    root = tmp_path_factory.mktemp("stack")
    up = WhispUp(
        root / "data",
        root / "logs",
        workers=1,
        # These tests upload a dozen clips in a minute; the default limit is for people.
        env={"WHISP_WEB__RATE_LIMIT": "100000/hour", "WHISP_WEB__RATE_BURST": "1000"},
        unset=("REDIS_URL",),
        cwd=REPO,
        up_timeout=UP_TIMEOUT_S,
        stop_timeout=60,
    )
    with up:
        yield DeskStack(up.url, root / "logs")


@pytest.fixture(scope="session")
def spoken(tmp_path_factory: pytest.TempPathFactory) -> tuple[Utterance, Path]:
    """About 4.6 s of espeak-ng speech, 16 kHz mono WAV."""
    utterance = next(u for u in SENTENCES if u.id == "late-for-dinner")
    return utterance, synthesize(utterance, tmp_path_factory.mktemp("speech"))
