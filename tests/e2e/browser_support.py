"""What the real-browser tests share: a user in the stack's database, a spoken sentence as
Chromium's fake microphone, Chromium itself, and a press on the talk button as a person
makes it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import wave
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tests.support.processes import WhispUp
from tests.support.speech import SENTENCES, Utterance, read_wav, synthesize, write_wav

ARTIFACTS = Path(__file__).parent / "artifacts"


@dataclass
class Stack:
    base_url: str
    token: str
    data_dir: Path
    banner: str


def whisp(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "whisp_cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def add_user(name: str, database_url: str) -> str:
    """`whisp users add NAME` on the stack's database; returns the printed token."""
    env = {**os.environ, "DATABASE_URL": database_url, "COLUMNS": "200"}
    done = whisp("users", "add", name, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    marker = next(i for i, line in enumerate(lines) if "Their API token:" in line)
    token = lines[marker + 1].strip()
    assert re.fullmatch(r"\S{16,}", token), done.stdout
    return token


def spoken_wav(clip_id: str, work_dir: Path, lead_s: float) -> tuple[Utterance, Path]:
    """The sentence `clip_id` as Chromium's fake capture device plays it: 16-bit PCM mono
    WAV in ARTIFACTS, with `lead_s` of silence in front.

    The fake device starts playing when the page opens the microphone (on the first press),
    a little before the page starts capturing; the silence in front keeps the first word
    whole. 16 kHz is fine for Chromium (it resamples to 48 kHz).
    """
    utterance = next(u for u in SENTENCES if u.id == clip_id)
    spoken = synthesize(utterance, work_dir)
    samples, rate = read_wav(spoken)
    padded = np.concatenate([np.zeros(round(lead_s * rate), dtype=np.float32), samples])
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = write_wav(ARTIFACTS / f"{clip_id}.wav", padded, rate)
    with wave.open(str(path), "rb") as wav:  # what Chromium's WAV reader needs
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 16_000)
    assert float(np.abs(padded).max()) > 0.3  # a real level, not near-silence
    return utterance, path


@contextmanager
def chromium(executable: str, wav_path: Path) -> Iterator[Any]:
    """Debian's Chromium under Playwright, its microphone playing `wav_path` once per
    capture stream (so: a new browser context per spoken clip)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=executable,
            headless=True,
            args=[
                "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={wav_path}%noloop",
            ],
        )  # fmt: skip
        try:
            yield browser
        finally:
            browser.close()


def hold(page: Any, seconds: float, *, touch: bool, while_held: Callable[[], None]) -> None:
    """Press #ptt as a person would (mouse button or finger), hold, release."""
    box = page.locator("#ptt").bounding_box()
    assert box is not None
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    if touch:
        cdp = page.context.new_cdp_session(page)
        point = [{"x": x, "y": y, "id": 1, "radiusX": 8, "radiusY": 8, "force": 1}]
        cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": point})
    else:
        page.mouse.move(x, y)
        page.mouse.down()
    started = time.monotonic()
    try:
        while_held()
        left = seconds - (time.monotonic() - started)
        if left > 0:
            page.wait_for_timeout(left * 1000)
    finally:
        if touch:
            cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
        else:
            page.mouse.up()


# No WebSocket that ever opens: every socket fails as a refused handshake does (error, then
# close 1006), as behind a proxy that does not pass WebSockets.
NO_WEBSOCKET = """
(() => {
  class RefusedSocket extends EventTarget {
    constructor(url) {
      super();
      this.url = url;
      this.readyState = 0;
      setTimeout(() => {
        this.readyState = 3;
        this.dispatchEvent(new Event("error"));
        this.dispatchEvent(new CloseEvent("close", { code: 1006 }));
      }, 20);
    }
    send() { throw new DOMException("not open", "InvalidStateError"); }
    close() {}
  }
  Object.assign(RefusedSocket, { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 });
  window.WebSocket = RefusedSocket;
})();
"""


@contextmanager
def whisp_stack(
    root: Path, users: Sequence[str], *, env: Mapping[str, str] | None = None
) -> Iterator[tuple[Stack, dict[str, str]]]:
    """`whisp up` (one tiny.en worker) on its own Redis and database in `root`, with
    `users` added first (so the page asks for a token); the Stack carries the first one's
    token, the dict everyone's. `env`, e.g. the local LLM switched off, goes to the stack."""
    data_dir, log_dir = root / "data", root / "logs"
    data_dir.mkdir()
    database_url = f"sqlite+aiosqlite:///{data_dir / 'gateway.db'}"  # where `whisp up` puts it
    tokens = {name: add_user(name, database_url) for name in users}
    up = WhispUp(data_dir, log_dir, workers=1, unset=("REDIS_URL", "DATABASE_URL"), env=env)
    with up:
        yield Stack(f"{up.url}/", tokens[users[0]], data_dir, up.banner), tokens
    assert up.returncode == 0, up.output[-3000:]


def sign_in(page: Any, base_url: str, token: str) -> None:
    """Open the page and sign in with `token`, as a person does; returns once it is live."""
    page.goto(base_url)
    page.locator("#login-form").wait_for(state="visible", timeout=15_000)
    page.fill("#token", token)
    page.press("#token", "Enter")
    page.locator("#connection[data-state=live]").wait_for(timeout=15_000)


@contextmanager
def rest_clients(
    stack: Stack, tokens: Mapping[str, str], timeout_s: float = 30
) -> Iterator[dict[str, Any]]:
    """Each user's REST client on the stack (their bearer token): what the server holds."""
    import httpx

    clients = {
        name: httpx.Client(
            base_url=stack.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=timeout_s
        )
        for name, token in tokens.items()
    }
    try:
        yield clients
    finally:
        for client in clients.values():
            client.close()
