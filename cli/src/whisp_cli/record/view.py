"""What `whisp record` draws: a live status line (state, level meter, elapsed time), the
words heard so far while SPACE is held (settled ones plain, tentative ones dim), a spinner
per turn still in flight (with its words, when it streamed, its place in the transcription
queue while it waits there, and the agent's answer as it is written, ending in a ▍), and
each finished turn printed once, for good, above.

Pure functions of the data, so the loop decides when to redraw and tests can render.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from rich.console import Group, RenderableType
from rich.spinner import Spinner
from rich.text import Text

from whisp_cli.desk.live import Words
from whisp_cli.desk.turn import Phase, Turn, in_line
from whisp_cli.record.answers import AnswerSoFar

METER_WIDTH = 24
METER_FLOOR_DBFS = -60.0
WRITING = "▍"
"""Ends an answer still being written (the finished one is printed without it)."""


@dataclass(frozen=True)
class Screen:
    recording: bool
    elapsed_s: float
    level_dbfs: float
    toggle: bool
    live_level: bool
    """The device is open while idle, so the meter means something then too."""
    source: str
    pending: Sequence[Turn] = ()
    notice: str | None = None
    words: Words | None = None
    """The held press's words so far (None: it is not streaming)."""
    answers: Mapping[str, AnswerSoFar] = field(default_factory=dict)
    """Answers being written, by recording id."""


def meter(level_dbfs: float, width: int = METER_WIDTH) -> Text:
    """A bar from -60 dBFS (empty) to 0 dBFS (full); red near clipping."""
    fraction = (max(METER_FLOOR_DBFS, min(0.0, level_dbfs)) - METER_FLOOR_DBFS) / -METER_FLOOR_DBFS
    filled = round(fraction * width)
    style = "red" if level_dbfs > -3 else "yellow" if level_dbfs > -12 else "green"
    bar = Text("▕")
    bar.append("█" * filled, style=style)
    bar.append("░" * (width - filled), style="dim")
    bar.append(f"▏{level_dbfs:6.1f} dBFS")
    return bar


def clock(seconds: float) -> str:
    minutes, rest = divmod(max(0.0, seconds), 60)
    return f"{int(minutes):02d}:{rest:04.1f}"


def status_line(screen: Screen) -> Text:
    if screen.recording:
        line = Text("● REC ", style="bold red")
        line.append(clock(screen.elapsed_s), style="bold")
        line.append("  ")
        line.append_text(meter(screen.level_dbfs))
        release = "press SPACE to stop" if screen.toggle else "release SPACE to send"
        line.append(f"  {release}", style="dim")
        return line
    action = "Press SPACE to start" if screen.toggle else "Hold SPACE to talk"
    line = Text(f"○ {action}", style="bold green")
    if screen.live_level:
        line.append("  ")
        line.append_text(meter(screen.level_dbfs))
    line.append(f"  ({screen.source}; ESC to quit)", style="dim")
    return line


def words_text(words: Words, prefix: str = "") -> Text:
    """Settled words as they are, the tentative tail dim."""
    line = Text(prefix)
    line.append(words.settled)
    if words.tentative:
        line.append(words.tentative, style="dim")
    return line


def hearing_line(words: Words | None) -> Text | None:
    """Under the status line while SPACE is held and the press streams."""
    if words is None:
        return None
    if not words:
        return Text("  … listening", style="dim italic")
    return words_text(words, "  » ")


def doing(turn: Turn) -> str:
    """What a turn in flight is doing: its phase, or while it waits its place in the queue."""
    now = f"queued: {in_line(turn.queue)}" if turn.queue is not None else f"{turn.phase}…"
    return f"#{turn.number} {now} ({turn.duration_s:.1f} s of audio)"


def pending_line(turn: Turn, answer: AnswerSoFar | None = None) -> RenderableType:
    if turn.phase is Phase.THINKING and turn.transcript:
        if answer is not None:
            return Group(you_said(turn), answer_text(answer.agent_id, answer.text, writing=True))
        return Group(you_said(turn), Spinner("dots", text=Text(f"   {turn.agent_id} is thinking…")))
    words = turn.live.words() if turn.live is not None else None
    line = words_text(words, f"#{turn.number} ") if words else Text(doing(turn))
    spinner = Spinner("dots", text=line)
    if turn.notice:
        return Group(spinner, Text(f"   {turn.notice}", style="yellow"))
    return spinner


def you_said(turn: Turn) -> Text:
    line = Text(f"#{turn.number} ", style="bold")
    if turn.empty or not turn.transcript:
        line.append("(nothing heard)", style="dim italic")
    else:
        line.append(turn.transcript)
    return line


def answer_text(agent_id: str, text: str, *, writing: bool = False) -> Text:
    """`   agent: text`; an answer still being written ends in WRITING."""
    line = Text(f"   {agent_id}: ", style="bold cyan")
    line.append(text.strip())
    if writing:
        line.append(WRITING, style="cyan")
    return line


def finished(turn: Turn) -> RenderableType:
    """A finished turn, printed once above the live area."""
    parts: list[RenderableType] = []
    if turn.transcript is not None:
        parts.append(you_said(turn))
    if turn.answer is not None:
        parts.append(answer_text(turn.agent_id or "agent", turn.answer))
    if turn.error is not None:
        parts.append(Text(f"#{turn.number} ✗ {turn.error}", style="bold red"))
    if turn.notice is not None:
        parts.append(Text(f"   note: {turn.notice}", style="yellow"))
    return Group(*parts)


def live(screen: Screen) -> RenderableType:
    rows: list[RenderableType] = [
        pending_line(turn, screen.answers.get(turn.recording_id or "")) for turn in screen.pending
    ]
    if screen.notice:
        rows.append(Text(screen.notice, style="yellow"))
    rows.append(status_line(screen))
    if screen.recording and (hearing := hearing_line(screen.words)) is not None:
        rows.append(hearing)
    return Group(*rows)
