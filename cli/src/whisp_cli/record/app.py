"""The `whisp record` loop: keys in, recordings out, turns drawn as they progress.

Single-threaded on purpose: this loop owns the recorder and the screen; turns report
through their own fields (read here ~15 times a second), the audio thread only fills
the recorder. Leaving the loop by any path (ESC, Ctrl+C, SIGTERM, an exception) goes
through `close()`, which releases the device before the terminal is restored.

An agent's answer shows under its turn while it is written: the event feed's answer deltas
fill an `AnswerBoard` (on the feed's thread), which each frame reads.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.live import Live

from whisp_cli.desk.capture import Capture
from whisp_cli.desk.live import LivePress
from whisp_cli.desk.ptt import Command, Edge, PushToTalk
from whisp_cli.desk.turn import Phase, Turn, TurnDeps, new_press, start_turn
from whisp_cli.record import view
from whisp_cli.record.answers import AnswerBoard
from whisp_cli.record.release import KeyHold
from whisp_cli.record.terminal import Key, KeyReader
from whisp_recorder import SourceError

FRAME_S = 1 / 15
MIN_AUDIO_S = 0.1


@dataclass(frozen=True)
class RecordOptions:
    toggle: bool = False
    initial_release_s: float = 0.7
    repeat_release_s: float = 0.12
    source_label: str = "microphone"
    timings_file: Path | None = None


class RecordSession:
    def __init__(
        self,
        capture: Capture,
        deps: TurnDeps,
        options: RecordOptions,
        console: Console,
        answers: AnswerBoard,
    ) -> None:
        self.capture = capture
        self.answers = answers
        """Answers being written (`deps.feed.on_answer` fills it)."""
        self.deps = deps
        self.options = options
        self.console = console
        self.hold = KeyHold(options.initial_release_s, options.repeat_release_s)
        self.ptt = PushToTalk(toggle=options.toggle)
        self.turns: list[Turn] = []
        self.printed: set[int] = set()
        self.notice: str | None = None
        self.live: LivePress | None = None
        """The held press's stream (None: not streaming, or not held)."""

    # ------------------------------------------------------------------ loop

    def run(self, keys: KeyReader) -> None:
        """Until ESC/BACKSPACE/Ctrl+C/Ctrl+D (or an exception, which propagates)."""
        with Live(view.live(self._screen()), console=self.console, auto_refresh=False) as live:
            while True:
                for event in keys.read(self._wait()):
                    if event.key is Key.QUIT:
                        return
                    if event.key is Key.SPACE:
                        for edge in self.hold.char(event.at):
                            self._edge(edge, event.at)
                self._edge(self.hold.poll(time.monotonic()), time.monotonic())
                if self.capture.stopped_by_itself:
                    self.notice = "the recording reached its maximum length and was sent"
                    self.ptt.stopped()
                    self._send()
                self._print_finished(live)
                live.update(view.live(self._screen()), refresh=True)

    def _wait(self) -> float:
        """Sleep until the next frame, or sooner when a release is due."""
        deadline = self.hold.deadline
        if deadline is None:
            return FRAME_S
        return max(0.0, min(FRAME_S, deadline - time.monotonic()))

    def _edge(self, edge: Edge | None, at: float) -> None:
        if edge is None:
            return
        command = self.ptt.on(edge)
        if command is Command.START:
            self._start(at)
        elif command is Command.STOP:
            self._send()

    def _start(self, at: float) -> None:
        press = new_press(self.deps)
        try:
            self.capture.begin(pressed_at=at, tap=press)
        except SourceError as exc:
            if press is not None:
                press.cancel()
            self.ptt.stopped()
            self.notice = f"cannot record: {exc}"
            return
        self.notice = None
        if press is not None:
            press.pressed_at = self.capture.pressed_at
        self.live = press

    def _send(self) -> None:
        stopped_at = time.monotonic()
        last_key = self.hold.last_at
        first_frame_ms = self.capture.first_frame_ms()
        recording = self.capture.end()
        live, self.live = self.live, None
        self._rearm()
        if recording is None or recording.duration_s < MIN_AUDIO_S:
            if live is not None:
                live.cancel()
            self.notice = "nothing was recorded (hold SPACE a little longer)"
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
        if last_key is not None and not self.options.toggle:
            turn.timings_ms["last_key_to_stop_ms"] = round((stopped_at - last_key) * 1000, 1)
        self.turns.append(turn)
        start_turn(turn, recording, self.deps)

    def _rearm(self) -> None:
        try:
            self.capture.ready()
        except SourceError as exc:
            self.notice = f"the microphone went away: {exc}"

    # ------------------------------------------------------------------ output

    def _screen(self) -> view.Screen:
        status = self.capture.recorder.status()
        live = self.live
        notice = self.notice
        pending = [t for t in self.turns if t.number not in self.printed]
        writing = {
            t.recording_id: answer
            for t in pending
            if t.recording_id
            and t.phase is Phase.THINKING
            and (answer := self.answers.get(t.recording_id))
        }
        if live is not None and (broken := live.broken) is not None:
            notice = f"streaming stopped ({broken}); the clip will be uploaded on release"
        return view.Screen(
            recording=self.capture.recording,
            elapsed_s=status.elapsed_s,
            level_dbfs=status.level_dbfs,
            toggle=self.options.toggle,
            live_level=self.capture.preopen,
            source=self.options.source_label,
            pending=pending,
            notice=notice,
            words=live.words() if live is not None else None,
            answers=writing,
        )

    def _print_finished(self, live: Live) -> None:
        for turn in self.turns:
            if turn.number in self.printed or not turn.done.is_set():
                continue
            self.printed.add(turn.number)
            live.console.print(view.finished(turn))
            self._write_timings(turn)
            self.answers.forget(turn.recording_id)

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
            "transcript": turn.transcript,
            "answer": turn.answer,
            "error": turn.error,
            **turn.timings_ms,
        }
        if (answer := self.answers.get(turn.recording_id)) is not None:
            first_ms = (answer.first_at - turn.stopped_at) * 1000
            record["stop_to_first_answer_piece_ms"] = round(first_ms, 1)
        with self.options.timings_file.open("a", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")

    def in_flight(self) -> int:
        return sum(not t.done.is_set() for t in self.turns)

    def close(self) -> None:
        """Release the device and drop a press still held; safe to call more than once."""
        live, self.live = self.live, None
        self.capture.close()
        if live is not None:
            live.cancel(wait_s=1.0)  # the server drops the item: nothing reaches the history
