"""The `whisp hotkey` loop: chord edges (or a SIGUSR1 toggle) in; recordings streamed (or
sent); each transcript copied, typed, announced.

Threads: pynput's listener only posts edges to a queue; this loop (the main thread)
owns the recorder; while the chord is held the press streams on threads of its own;
each turn commits (or uploads) and waits on its own thread and delivers its result from
there. Output is one plain line per happening, so it reads well in a terminal and in a
log file alike (Rich would wrap long transcripts at 80 columns when stdout is not a
terminal): while a press streams, a `hearing:` line each time its words change; for a
recording that waits behind others, a `queued:` line when its place is first known and one
more when a worker takes it (not one per move: a log should not fill with countdowns).
"""

from __future__ import annotations

import dataclasses
import json
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TextIO

from whisp_cli.desk.capture import Capture
from whisp_cli.desk.live import LivePress
from whisp_cli.desk.ptt import Command, PushToTalk
from whisp_cli.desk.turn import Phase, Turn, TurnDeps, in_line, new_press, start_turn
from whisp_cli.hotkey.deliver import Delivery
from whisp_cli.hotkey.listener import ChordListener, KeyEdge
from whisp_cli.hotkey.tray import State, Tray
from whisp_recorder import SourceError

TICK_S = 0.05
MIN_AUDIO_S = 0.1
Toggle = Literal["toggle"]
"""A press from outside the keyboard (SIGUSR1, the tray): start or stop, whatever the mode."""


@dataclass(frozen=True)
class DaemonOptions:
    toggle: bool = False
    keys_label: str = "<ctrl>+<shift>+r"
    timings_file: Path | None = None


class Output:
    """Line-at-a-time output shared by the loop and the turn threads."""

    def __init__(self, out: TextIO, err: TextIO) -> None:
        self._out, self._err = out, err
        self._lock = threading.Lock()

    def line(self, text: str, error: bool = False) -> None:
        with self._lock:
            stream = self._err if error else self._out
            stream.write(text + "\n")
            stream.flush()


class HotkeyDaemon:
    def __init__(
        self,
        capture: Capture,
        deps: TurnDeps,
        delivery: Delivery,
        output: Output,
        options: DaemonOptions,
    ) -> None:
        self.capture = capture
        self.deps = dataclasses.replace(deps, on_change=self._turn_changed)
        self.delivery = delivery
        self.out = output
        self.options = options
        self.ptt = PushToTalk(toggle=options.toggle)
        self.queue: queue.Queue[KeyEdge | Toggle] = queue.Queue()
        self.listener: ChordListener | None = None
        self.tray: Tray | None = None
        self.turns: list[Turn] = []
        self._announced: set[tuple[int, str]] = set()
        self._stop = threading.Event()
        self.live: LivePress | None = None
        """The held press's stream (None: not streaming, or not held)."""
        self._heard = ""
        self._broken_said = False

    # ------------------------------------------------------------------ control

    def toggle(self) -> None:
        """Safe from a signal handler or another thread."""
        self.queue.put("toggle")

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        how = "press it again to stop" if self.options.toggle else "release to send"
        trigger = self.options.keys_label if self.listener else "`whisp hotkey --toggle-running`"
        self.out.line(f"ready: {trigger} starts recording, {how} (Ctrl+C quits)")
        while not self._stop.is_set():
            try:
                item: KeyEdge | Toggle | None = self.queue.get(timeout=self._wait())
            except queue.Empty:
                item = None
            if self.listener is not None:
                self.listener.poll()
            if item == "toggle":
                self._command(Command.STOP if self.capture.recording else Command.START, None)
            elif isinstance(item, KeyEdge):
                self._command(self.ptt.on(item.edge), item.at)
            if self.capture.stopped_by_itself:
                self.out.line("the recording reached its maximum length; sending it")
                self._send()
            self._show_live()
        self._drop_live()

    def _wait(self) -> float:
        deadline = self.listener.deadline if self.listener else None
        if deadline is None:
            return TICK_S
        return max(0.0, min(TICK_S, deadline - time.monotonic()))

    def _command(self, command: Command | None, at: float | None) -> None:
        if command is Command.START:
            self._start(at)
        elif command is Command.STOP:
            self._send()

    def _start(self, at: float | None) -> None:
        press = new_press(self.deps)
        try:
            self.capture.begin(pressed_at=at, tap=press)
        except SourceError as exc:
            if press is not None:
                press.cancel()
            self.ptt.stopped()
            self.out.line(f"error: cannot record: {exc}", error=True)
            self.delivery.notify_desktop("WhisPTT cannot record", str(exc), urgent=True)
            return
        self.ptt.recording = True  # in step when the start came from a toggle, not a key
        if press is not None:
            press.pressed_at = self.capture.pressed_at
        self.live, self._heard, self._broken_said = press, "", False
        self._show("recording")
        self.delivery.tone(rising=True)
        self.out.line("recording (streaming)…" if press is not None else "recording…")

    def _send(self) -> None:
        stopped_at = time.monotonic()
        first_frame_ms = self.capture.first_frame_ms()
        recording = self.capture.end()
        live, self.live = self.live, None
        self.ptt.stopped()
        self.delivery.tone(rising=False)
        if recording is None or recording.duration_s < MIN_AUDIO_S:
            if live is not None:
                live.cancel()
            self._show("idle")
            self.out.line("nothing recorded (hold the keys a little longer)")
            return
        turn = Turn(
            number=len(self.turns) + 1,
            duration_s=recording.duration_s,
            stopped_at=stopped_at,
            agent_id=self.deps.options.agent_id,
            live=live,
        )
        if first_frame_ms is not None:
            turn.timings_ms["press_to_first_frame_ms"] = first_frame_ms
        self.turns.append(turn)
        self._show("processing")
        how = " (streamed)" if live is not None and live.broken is None else ""
        self.out.line(f"sent {recording.duration_s:.1f} s of audio{how}; transcribing…")
        start_turn(turn, recording, self.deps)

    def _show_live(self) -> None:
        """While a press streams: a line each time its words change (or the stream broke)."""
        live = self.live
        if live is None:
            return
        if (broken := live.broken) is not None and not self._broken_said:
            self._broken_said = True
            self.out.line(f"note: streaming stopped ({broken}); the clip will be uploaded")
        words = live.words()
        if words and words.text != self._heard:
            self._heard = words.text
            self.out.line(f"hearing: {words.text}")

    def _drop_live(self) -> None:
        """Shutting down with the chord held: the server drops the item."""
        live, self.live = self.live, None
        if live is not None:
            self.capture.close()
            live.cancel(wait_s=1.0)

    # ------------------------------------------------------------------ results

    def _turn_changed(self, turn: Turn) -> None:
        """On the turn's thread: deliver each part once, as soon as it exists."""
        self._say_queue(turn)
        if turn.transcript is not None and self._first(turn, "transcript"):
            self._deliver_transcript(turn)
        if turn.answer is not None and self._first(turn, "answer"):
            self.out.line(f"answer ({turn.agent_id}): {turn.answer}")
            self.delivery.notify_desktop(f"{turn.agent_id} answered", turn.answer)
        if turn.notice is not None and self._first(turn, "notice"):
            self.out.line(f"note: {turn.notice}")
        if turn.phase is Phase.FAILED and self._first(turn, "error"):
            self.out.line(f"error: {turn.error}", error=True)
            self.delivery.notify_desktop("WhisPTT", turn.error or "failed", urgent=True)
        if turn.done.is_set() and self._first(turn, "done"):
            self._write_timings(turn)
            if not self.capture.recording and all(t.done.is_set() for t in self.turns):
                self._show("idle")

    def _say_queue(self, turn: Turn) -> None:
        """Its first known place, if others wait ahead; then, once, that a worker took it."""
        if turn.queue is not None:
            if self._first(turn, "placed") and turn.queue.ahead:
                self._announced.add((turn.number, "queued"))
                self.out.line(f"queued: {in_line(turn.queue)}")
        elif (
            turn.transcript is None
            and not turn.finished
            and (turn.number, "queued") in self._announced
            and self._first(turn, "taken")
        ):
            self.out.line("a worker took it; transcribing…")

    def _first(self, turn: Turn, part: str) -> bool:
        key = (turn.number, part)
        if key in self._announced:
            return False
        self._announced.add(key)
        return True

    def _deliver_transcript(self, turn: Turn) -> None:
        text = turn.transcript or ""
        if turn.empty or not text:
            self.out.line("transcript: (nothing heard)")
            self.delivery.notify_desktop("WhisPTT heard nothing")
            return
        self.out.line(f"transcript: {text}")
        if self.delivery.copy(text):
            turn.mark("clipboard")
            self.out.line("copied to the clipboard")
        if self.delivery.type_into_focus(text):
            self.out.line("typed into the focused window")
        self.delivery.notify_desktop("WhisPTT", text)

    def _show(self, state: State) -> None:
        if self.tray is not None:
            self.tray.show(state)

    def _write_timings(self, turn: Turn) -> None:
        if self.options.timings_file is None:
            return
        record = {
            "turn": turn.number,
            "recording_id": turn.recording_id,
            "streamed": turn.streamed,
            "notice": turn.notice,
            "phase": str(turn.phase),
            "duration_s": round(turn.duration_s, 3),
            **turn.timings_ms,
        }
        with self.options.timings_file.open("a", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")
