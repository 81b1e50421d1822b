"""`whisp record` in a real terminal (tmux): SPACE held as a terminal sends it (one
character, then auto-repeat every ~30 ms after a delay), released, and the transcript
read off the screen.

tmux passes no key-up, so this exercises exactly the release inference a person relies
on. Its own tmux server (-S socket) keeps it away from anyone else's sessions.

Streaming (the default): the words must be on the screen while SPACE is still held, the
final transcript after, one recording in the history, and no upload; with the socket
refused, or dropped mid-utterance, the press must still end in its transcript, uploaded.
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
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cli.conftest import REPO, DeskStack
from tests.cli.realtime_standin import Standin
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


def start_record(
    pane: Pane,
    stack: DeskStack,
    clip: Path,
    timings: Path,
    *extra: str,
    env: dict[str, str] | None = None,
    device: str | None = None,
) -> None:
    source = ["--device", device] if device else ["--input", str(clip)]
    argv = [sys.executable, "-m", "whisp_cli.main", "record", *source,
            "--url", stack.url, "--timings-file", str(timings), *extra]  # fmt: skip
    start_command(pane, argv, env)
    pane.wait_for(r"Hold SPACE to talk|Press SPACE to start|whisp:", timeout_s=60)
    assert "whisp:" not in pane.screen(), pane.screen()


def start_command(pane: Pane, argv: list[str], env: dict[str, str] | None = None) -> None:
    assign = " ".join(f"{k}={shlex.quote(v)}" for k, v in (env or {}).items())
    command = f"cd {shlex.quote(str(REPO))} && {assign} {shlex.join(argv)}; echo WHISP_EXIT=$?"
    pane.tmux(
        "new-session", "-d", "-s", pane.name, "-x", "160", "-y", "40", f"{command}; {TTY_MODES}"
    )


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


# --- streaming ---------------------------------------------------------------------------

HEARING = r"^\s*» (.+)$"
"""The live line's words while SPACE is held."""


@dataclass
class Held:
    """SPACE held on a thread, so the screen can be read while it is down."""

    pane: Pane
    seconds: float
    pressed_at: float = 0.0
    released_at: float | None = None

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self._hold, daemon=True)

    def _hold(self) -> None:
        self.pane.hold_space(self.seconds)
        self.released_at = time.monotonic()

    def __enter__(self) -> Held:
        self.pressed_at = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._thread.join(timeout=self.seconds + 10)

    @property
    def down(self) -> bool:
        return self._thread.is_alive()


def words_while_held(held: Held) -> tuple[str, float]:
    """The live line's words, read off the screen before SPACE is let go, and seconds from
    the press until they first showed."""
    first_s: float | None = None
    words = ""
    while held.down:
        screen = held.pane.screen()
        if found := re.search(HEARING, screen, re.M):
            if first_s is None:
                first_s = time.monotonic() - held.pressed_at
            words = found.group(1).strip()
        time.sleep(0.1)
    assert first_s is not None, f"no words on the live line while SPACE was held:\n{screen}"
    return words, first_s


def test_holding_space_streams_words_onto_the_live_line_before_release(
    pane: Pane, stack: DeskStack, spoken: tuple[Utterance, Path], tmp_path: Path
) -> None:
    utterance, clip = spoken
    timings = tmp_path / "timings.jsonl"
    uploads, before = stack.uploads(), set(stack.history())
    start_record(pane, stack, clip, timings)

    with Held(pane, duration_s(clip) + 0.3) as held:
        words, first_s = words_while_held(held)
    text = finished_turn(pane, stack)
    quit_cleanly(pane)

    heard = set(re.findall(r"[a-z]+", words.lower()))
    assert heard & set(re.findall(r"[a-z]+", utterance.text.lower())), words
    assert word_error_rate(utterance.text, text) <= MAX_WER, text
    (turn,) = read_timings(timings)
    assert turn["phase"] == "done" and turn["streamed"] is True, turn
    assert turn["notice"] is None, turn
    assert float(turn["press_to_first_words_ms"]) < duration_s(clip) * 1000, turn  # type: ignore[arg-type]
    new = [rid for rid in stack.history() if rid not in before]
    assert new == [turn["recording_id"]], new
    assert stack.uploads() == uploads, "a streamed press must not be uploaded"
    print(
        f"streamed: press -> words on screen {first_s * 1000:.0f} ms "
        f"(press -> first words {turn['press_to_first_words_ms']} ms); "
        f"release -> transcript {turn['stop_to_transcript_ms']} ms "
        f"+ inferred release {turn['last_key_to_stop_ms']} ms"
    )


def test_a_refused_socket_falls_back_to_the_upload(
    pane: Pane, stack: DeskStack, spoken: tuple[Utterance, Path], tmp_path: Path
) -> None:
    """`cli.realtime_url` at a port nobody listens on: the press is uploaded on release."""
    from whisp_cli.redis_server import free_port

    utterance, clip = spoken
    timings = tmp_path / "timings.jsonl"
    uploads = stack.uploads()
    closed = f"ws://127.0.0.1:{free_port()}/v1/realtime"
    start_record(pane, stack, clip, timings, env={"WHISP_CLI__REALTIME_URL": closed})

    pane.hold_space(duration_s(clip) + 0.3)
    text = finished_turn(pane, stack)
    assert word_error_rate(utterance.text, text) <= MAX_WER, text
    pane.wait_for(r"note: streaming failed \(cannot open the stream", timeout_s=5)
    quit_cleanly(pane)
    (turn,) = read_timings(timings)
    assert turn["phase"] == "done" and turn["streamed"] is False, turn
    assert stack.uploads() == uploads + 1
    print(f"fallback: release -> transcript {turn['stop_to_transcript_ms']} ms")


def test_no_stream_uploads(
    pane: Pane, stack: DeskStack, spoken: tuple[Utterance, Path], tmp_path: Path
) -> None:
    utterance, clip = spoken
    timings = tmp_path / "timings.jsonl"
    uploads = stack.uploads()
    start_record(pane, stack, clip, timings, "--no-stream")
    pane.hold_space(duration_s(clip) + 0.3)
    text = finished_turn(pane, stack)
    assert word_error_rate(utterance.text, text) <= MAX_WER, text
    quit_cleanly(pane)
    (turn,) = read_timings(timings)
    assert turn["streamed"] is False and turn["notice"] is None, turn
    assert stack.uploads() == uploads + 1


def test_a_stream_dropped_mid_utterance_uploads_the_whole_press(
    pane: Pane, stack: DeskStack, spoken: tuple[Utterance, Path], tmp_path: Path
) -> None:
    """The socket (a stand-in: the real gateway does not drop on cue) goes away after 1 s
    of audio; the live line says so, and on release the whole press is uploaded."""
    utterance, clip = spoken
    timings = tmp_path / "timings.jsonl"
    uploads = stack.uploads()
    with Standin(fault="drop", after_appends=10) as standin:
        start_record(pane, stack, clip, timings, env={"WHISP_CLI__REALTIME_URL": standin.url})
        with Held(pane, duration_s(clip) + 0.3) as held:
            pane.wait_for(r"streaming stopped \(the gateway closed the stream", timeout_s=5)
            assert held.down, "the notice comes while SPACE is held"
        text = finished_turn(pane, stack)
    assert word_error_rate(utterance.text, text) <= MAX_WER, text  # all of it, not 1 s
    quit_cleanly(pane)
    (turn,) = read_timings(timings)
    assert turn["streamed"] is False and "streaming failed" in str(turn["notice"]), turn
    assert stack.uploads() == uploads + 1


def test_esc_while_streaming_leaves_nothing_in_the_history(
    pane: Pane, stack: DeskStack, spoken: tuple[Utterance, Path], tmp_path: Path
) -> None:
    _utterance, clip = spoken
    timings = tmp_path / "timings.jsonl"
    before = set(stack.history())
    start_record(pane, stack, clip, timings, "--toggle")
    pane.key("Space")
    pane.wait_for(HEARING, timeout_s=10)  # streaming, with words already
    quit_cleanly(pane)
    time.sleep(1.0)
    assert set(stack.history()) == before
    assert not timings.exists()


def test_a_real_microphone_streams_too(
    pane: Pane, stack: DeskStack, spoken: tuple[Utterance, Path], tmp_path: Path
) -> None:
    """PortAudio's `pulse` device on a private PulseAudio whose default source is a null
    sink's monitor: the speech played into the sink is what the "microphone" hears, at the
    device's own rate, resampled live for the socket."""
    from tests.audio.pulse import PulseServer, available
    from tests.support.tools import unavailable

    if (missing := available()) is not None:
        unavailable(missing)  # a skip here, a failure under CI=true
    utterance, clip = spoken
    timings = tmp_path / "timings.jsonl"
    uploads = stack.uploads()
    pulse = PulseServer(tmp_path / "pulse").start()
    try:
        start_record(pane, stack, clip, timings, env={"PULSE_SERVER": pulse.server}, device="pulse")
        with Held(pane, 0.3 + duration_s(clip) + 0.6) as held:
            time.sleep(0.3)
            player = threading.Thread(target=pulse.play, args=(clip,), daemon=True)
            player.start()
            words, first_s = words_while_held(held)
            player.join(timeout=30)
        text = finished_turn(pane, stack)
        quit_cleanly(pane)
    finally:
        pulse.stop()
    assert words and word_error_rate(utterance.text, text) <= MAX_WER, (words, text)
    (turn,) = read_timings(timings)
    assert turn["streamed"] is True and turn["notice"] is None, turn
    assert stack.uploads() == uploads
    print(f"microphone: press -> words on screen {first_s * 1000:.0f} ms; {turn}")
