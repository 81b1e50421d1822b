"""`whisp record` in a real terminal (tmux): SPACE held as a terminal sends it (one
character, then auto-repeat every ~30 ms after a delay), released, and the transcript
read off the screen.

tmux passes no key-up, so this exercises exactly the release inference a person relies
on. Its own tmux server (-S socket) keeps it away from anyone else's sessions.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cli.conftest import REPO, DeskStack
from tests.support.speech import Utterance, duration_s, word_error_rate
from tests.support.tools import needs_tools

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(240),
    needs_tools("tmux", why="a real terminal for `whisp record`"),
]

REPEAT_DELAY_S = 0.5
REPEAT_EVERY_S = 0.03
MAX_WER = 0.25
# After whisp exits the shell prints the terminal's modes (they must be back to cooked:
# icanon, echo, isig) and stays, so the exit code and the last screen can be read.
TTY_MODES = (
    "echo TTY $(stty -a | tr ' ;' '\\n\\n' | grep -xE -- '-?(icanon|echo|isig)' | tr '\\n' ' ')"
    "; sleep 300"
)


@dataclass
class Pane:
    socket: Path
    name: str

    def tmux(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-S", str(self.socket), *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return done.stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-J", "-t", self.name)

    def key(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", self.name, *keys)

    def wait_for(self, pattern: str, timeout_s: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout_s
        while True:
            screen = self.screen()
            if found := re.search(pattern, screen, re.M):
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"no {pattern!r} on the screen after {timeout_s}s:\n{screen}")
            time.sleep(0.2)

    def hold_space(self, seconds: float) -> None:
        """What a terminal sends while SPACE is held for `seconds`."""
        start = time.monotonic()
        self.key("Space")
        time.sleep(REPEAT_DELAY_S)
        while time.monotonic() - start < seconds:
            self.key("Space")
            time.sleep(REPEAT_EVERY_S)


@pytest.fixture
def pane(tmp_path: Path) -> Iterator[Pane]:
    socket = tmp_path / "tmux.sock"
    pane = Pane(socket, f"whisp-{uuid.uuid4().hex[:8]}")
    try:
        yield pane
    finally:
        # Each pane leads its own process group (its shell and `whisp record`): note them,
        # end the server, then SIGKILL whatever of those groups outlived the hang-up.
        listed = subprocess.run(
            ["tmux", "-S", str(socket), "list-panes", "-a", "-F", "#{pane_pid}"],
            capture_output=True, text=True, timeout=10, check=False,
        )  # fmt: skip
        subprocess.run(
            ["tmux", "-S", str(socket), "kill-server"], capture_output=True, timeout=10, check=False
        )
        for pid in listed.stdout.split() if listed.returncode == 0 else []:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(int(pid), signal.SIGKILL)


def start_record(pane: Pane, stack: DeskStack, clip: Path, timings: Path, *extra: str) -> None:
    argv = [sys.executable, "-m", "whisp_cli.main", "record", "--input", str(clip),
            "--url", stack.url, "--timings-file", str(timings), *extra]  # fmt: skip
    start_command(pane, argv)
    pane.wait_for(r"Hold SPACE to talk|Press SPACE to start|whisp:", timeout_s=60)
    assert "whisp:" not in pane.screen(), pane.screen()


def start_command(pane: Pane, argv: list[str]) -> None:
    command = f"cd {shlex.quote(str(REPO))} && {shlex.join(argv)}; echo WHISP_EXIT=$?; {TTY_MODES}"
    pane.tmux("new-session", "-d", "-s", pane.name, "-x", "160", "-y", "40", command)


def finished_turn(pane: Pane, stack: DeskStack, number: int = 1) -> str:
    """The transcript line `#N text` (a pending turn's line starts with a spinner)."""
    try:
        found = pane.wait_for(rf"^#{number} (?!✗)(.+)$|^#{number} ✗ (.+)$", timeout_s=120)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{stack.tail()}") from None
    assert found.group(2) is None, f"turn failed: {found.group(2)}\n{stack.tail()}"
    return found.group(1).strip()


def quit_cleanly(pane: Pane, key: str = "Escape") -> None:
    pane.key(key)
    pane.wait_for(r"WHISP_EXIT=0", timeout_s=20)
    assert_terminal_restored(pane)


def assert_terminal_restored(pane: Pane) -> None:
    modes = pane.wait_for(r"^TTY (.*)$", timeout_s=10).group(1).split()
    assert sorted(modes) == ["echo", "icanon", "isig"], modes


def read_timings(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_hold_space_talk_release_and_read_the_transcript(
    pane: Pane, stack: DeskStack, spoken: tuple[Utterance, Path], tmp_path: Path
) -> None:
    utterance, clip = spoken
    timings = tmp_path / "timings.jsonl"
    start_record(pane, stack, clip, timings)

    pane.hold_space(duration_s(clip) + 0.3)
    text = finished_turn(pane, stack)
    assert word_error_rate(utterance.text, text) <= MAX_WER, text
    quit_cleanly(pane)

    (turn,) = read_timings(timings)
    assert turn["phase"] == "done"
    # Release was inferred ~120 ms after the last repeat (tmux adds some jitter).
    assert 100 <= float(turn["last_key_to_stop_ms"]) <= 400, turn  # type: ignore[arg-type]
    assert float(turn["press_to_first_frame_ms"]) < 500, turn  # type: ignore[arg-type]


def test_toggle_mode_with_an_agent_answer(
    pane: Pane, stack: DeskStack, spoken: tuple[Utterance, Path], tmp_path: Path
) -> None:
    """--toggle: one SPACE starts, another stops; the agent's answer arrives over SSE."""
    utterance, clip = spoken
    timings = tmp_path / "timings.jsonl"
    start_record(pane, stack, clip, timings, "--toggle", "--agent", "assistant")

    pane.key("Space")
    pane.wait_for(r"● REC", timeout_s=5)
    time.sleep(duration_s(clip) + 0.3)
    pane.key("Space")
    text = finished_turn(pane, stack)
    assert word_error_rate(utterance.text, text) <= MAX_WER, text
    answer = pane.wait_for(r"^\s+assistant: (.+)$|^#1 ✗ (.+)$", timeout_s=120)
    assert answer.group(2) is None, f"agent failed: {answer.group(2)}\n{stack.tail()}"
    assert answer.group(1).strip()
    quit_cleanly(pane)


def test_an_unreachable_gateway_is_explained_and_the_terminal_left_as_it_was(
    pane: Pane, spoken: tuple[Utterance, Path]
) -> None:
    from whisp_cli.redis_server import free_port

    _utterance, clip = spoken
    url = f"http://127.0.0.1:{free_port()}"
    argv = [sys.executable, "-m", "whisp_cli.main", "record", "--input", str(clip), "--url", url]
    start_command(pane, argv)
    pane.wait_for(r"WHISP_EXIT=1", timeout_s=60)
    screen = pane.screen()
    assert "cannot reach the gateway" in screen and "whisp up" in screen, screen
    assert_terminal_restored(pane)


def test_ctrl_c_while_recording_drops_the_clip_and_restores_the_terminal(
    pane: Pane, stack: DeskStack, spoken: tuple[Utterance, Path], tmp_path: Path
) -> None:
    _utterance, clip = spoken
    timings = tmp_path / "timings.jsonl"
    start_record(pane, stack, clip, timings, "--toggle")
    pane.key("Space")
    pane.wait_for(r"● REC", timeout_s=5)
    quit_cleanly(pane, key="C-c")
    assert not timings.exists(), "a cancelled recording is never sent"
