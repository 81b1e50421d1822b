"""`whisp hotkey` on a real X server (Xvfb): Ctrl+Shift+R held and released with
xdotool (XTEST, as a keyboard would), the file-replay source as the microphone, and the
transcript delivered to stdout and the clipboard. Then the same through the desktop
shortcut route (`--toggle-running`, SIGUSR1) that Wayland users bind.

Xvfb runs with a 5 s auto-repeat delay so the held chord sends no repeat bursts.

The held chord streams (the default): `hearing:` lines with the words come while it is
still down, then the final transcript, with no upload.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.cli.conftest import REPO, DeskStack
from tests.support.speech import Utterance, duration_s, word_error_rate
from tests.support.tools import needs_tools
from whisp_cli.stack import stop_processes

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(240),
    needs_tools("Xvfb", "xdotool", "xclip", why="a real X server, its keyboard and clipboard"),
]

MAX_WER = 0.25


def free_display() -> int:
    for number in range(90, 300):
        if (
            not Path(f"/tmp/.X11-unix/X{number}").exists()
            and not Path(f"/tmp/.X{number}-lock").exists()
        ):
            return number
    raise RuntimeError("no free X display number")


@pytest.fixture
def display() -> Iterator[str]:
    number = free_display()
    xvfb = subprocess.Popen(
        ["Xvfb", f":{number}", "-ardelay", "5000", "-arinterval", "1000",
         "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own group: teardown kills all of it
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while not Path(f"/tmp/.X11-unix/X{number}").exists():
            assert xvfb.poll() is None, "Xvfb exited"
            assert time.monotonic() < deadline, "Xvfb did not start"
            time.sleep(0.05)
        yield f":{number}"
    finally:
        # SIGTERM its group, SIGKILL after 10 s; also ends the xclip holding the clipboard.
        stop_processes([xvfb], timeout=10)


@dataclass
class Daemon:
    proc: subprocess.Popen[str]
    env: dict[str, str]
    lines: queue.Queue[str] = field(default_factory=queue.Queue)
    seen: list[str] = field(default_factory=list)

    def pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, prefix: str, timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            self.seen.append(line)
            if line.startswith(prefix):
                return line
            assert not line.startswith("error:"), "\n".join(self.seen)
        raise AssertionError(f"no {prefix!r} line in {timeout_s}s:\n" + "\n".join(self.seen))

    def xdotool(self, *args: str) -> None:
        subprocess.run(["xdotool", *args], env=self.env, check=True, timeout=10)

    def clipboard(self) -> str:
        """What the clipboard holds; retried briefly, as the xclip that pyperclip started
        may not own the selection yet the instant after it was handed the text."""
        deadline = time.monotonic() + 3
        while True:
            done = subprocess.run(
                ["xclip", "-o", "-selection", "clipboard"],
                env=self.env,
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
            if done.returncode == 0 or time.monotonic() > deadline:
                assert done.returncode == 0, done.stderr
                return done.stdout
            time.sleep(0.1)


@pytest.fixture
def daemon(
    display: str, stack: DeskStack, spoken: tuple[Utterance, Path], tmp_path: Path
) -> Iterator[Daemon]:
    _utterance, clip = spoken
    env = {
        **os.environ,
        "DISPLAY": display,
        "XDG_RUNTIME_DIR": str(tmp_path),  # the pid file for --toggle-running goes here
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("WAYLAND_DISPLAY", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "whisp_cli.main", "hotkey", "--input", str(clip),
         "--url", stack.url, "--timings-file", str(tmp_path / "timings.jsonl")],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its group holds what it starts (xclip, notify-send)
    )  # fmt: skip
    running = Daemon(proc, env)
    threading.Thread(target=running.pump, daemon=True).start()
    try:
        running.wait_for("ready:", timeout_s=60)
        yield running
        proc.send_signal(signal.SIGINT)
        running.wait_for("stopped", timeout_s=20)
        assert proc.wait(timeout=20) == 0
    finally:  # on a failure path too: the daemon's whole group, SIGKILL after 5 s
        stop_processes([proc], timeout=5)


def transcript_of(daemon: Daemon, stack: DeskStack) -> str:
    try:
        line = daemon.wait_for("transcript:", timeout_s=120)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{stack.tail()}") from None
    return line.removeprefix("transcript:").strip()


def test_hold_the_hotkey_talk_release_and_get_the_clipboard(
    daemon: Daemon, stack: DeskStack, spoken: tuple[Utterance, Path], tmp_path: Path
) -> None:
    utterance, clip = spoken
    daemon.xdotool("keydown", "ctrl+shift+r")
    try:
        daemon.wait_for("recording", timeout_s=5)
        time.sleep(duration_s(clip) + 0.3)
    finally:
        daemon.xdotool("keyup", "ctrl+shift+r")
    daemon.wait_for("sent ", timeout_s=5)
    text = transcript_of(daemon, stack)
    assert word_error_rate(utterance.text, text) <= MAX_WER, text
    daemon.wait_for("copied to the clipboard", timeout_s=10)
    assert daemon.clipboard().strip() == text

    (turn,) = [json.loads(line) for line in (tmp_path / "timings.jsonl").read_text().splitlines()]
    assert turn["phase"] == "done"
    assert turn["duration_s"] == pytest.approx(duration_s(clip) + 0.3, abs=0.5)


def test_the_held_chord_streams_words_before_release(
    daemon: Daemon, stack: DeskStack, spoken: tuple[Utterance, Path], tmp_path: Path
) -> None:
    utterance, clip = spoken
    uploads, before = stack.uploads(), set(stack.history())
    daemon.xdotool("keydown", "ctrl+shift+r")
    try:
        assert "streaming" in daemon.wait_for("recording", timeout_s=5)
        pressed = time.monotonic()
        hearing = daemon.wait_for("hearing:", timeout_s=duration_s(clip))
        first_s = time.monotonic() - pressed
        time.sleep(max(0.0, duration_s(clip) + 0.3 - first_s))
    finally:
        daemon.xdotool("keyup", "ctrl+shift+r")
    released = time.monotonic()
    assert "(streamed)" in daemon.wait_for("sent ", timeout_s=5)
    text = transcript_of(daemon, stack)
    final_s = time.monotonic() - released
    assert word_error_rate(utterance.text, text) <= MAX_WER, text
    assert hearing.removeprefix("hearing:").strip()
    daemon.wait_for("copied to the clipboard", timeout_s=10)
    assert daemon.clipboard().strip() == text

    (turn,) = [json.loads(line) for line in (tmp_path / "timings.jsonl").read_text().splitlines()]
    assert turn["phase"] == "done" and turn["streamed"] is True, turn
    assert [rid for rid in stack.history() if rid not in before] == [turn["recording_id"]]
    assert stack.uploads() == uploads, "a streamed press must not be uploaded"
    print(
        f"hotkey streamed: press -> hearing line {first_s * 1000:.0f} ms, keyup -> transcript "
        f"line {final_s * 1000:.0f} ms (stop -> transcript {turn['stop_to_transcript_ms']} ms)"
    )


def test_a_desktop_shortcut_toggles_the_running_daemon(
    daemon: Daemon, stack: DeskStack, spoken: tuple[Utterance, Path]
) -> None:
    """What a Wayland user binds: `whisp hotkey --toggle-running`, once to start and once
    to stop (it signals the daemon found through the pid file)."""
    utterance, clip = spoken

    def toggle() -> None:
        done = subprocess.run(
            [sys.executable, "-m", "whisp_cli.main", "hotkey", "--toggle-running"],
            env=daemon.env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 0, done.stderr

    toggle()
    daemon.wait_for("recording", timeout_s=10)
    time.sleep(duration_s(clip) + 0.3)
    toggle()
    text = transcript_of(daemon, stack)
    assert word_error_rate(utterance.text, text) <= MAX_WER, text


def _run_hotkey(env: dict[str, str], clip: Path) -> subprocess.CompletedProcess[str]:
    from whisp_cli.redis_server import free_port

    argv = [sys.executable, "-m", "whisp_cli.main", "hotkey", "--input", str(clip),
            "--url", f"http://127.0.0.1:{free_port()}"]  # fmt: skip
    return subprocess.run(
        argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_wayland_without_x_explains_the_toggle_fallback(
    spoken: tuple[Utterance, Path], tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
    env |= {"WAYLAND_DISPLAY": "wayland-0", "XDG_RUNTIME_DIR": str(tmp_path)}
    done = _run_hotkey(env, spoken[1])
    assert "toggle mode" in done.stdout and "--toggle-running" in done.stdout, done.stdout
    assert done.returncode == 1 and "cannot reach the gateway" in done.stderr, done.stderr


def test_no_display_at_all_is_a_clear_error(spoken: tuple[Utterance, Path]) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    done = _run_hotkey(env, spoken[1])
    assert done.returncode == 1 and "no display" in done.stderr, done.stderr
