"""One turn: a finished recording sent and followed until its words (and the agent's
answer, if one was asked for) arrive, or until it fails.

Sent means one of two ways. A press that streamed (`Turn.live`) is committed on its socket,
which names the recording; if the stream broke at any point, or the commit is not
confirmed, the press's audio (all of it: the recorder kept it) is uploaded instead, with a
notice. A press that did not stream is uploaded. Either way the recording is then followed
through its snapshots on the event feed, the same for both. While an upload waits for a
transcription worker, the feed also says where (`Turn.queue`, in the UI's words `in_line`).

A turn runs on a thread of its own, so the person can start the next recording while
the last one is still being transcribed; the UI reads the turn's fields as they change.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from whisp_cli.desk.events import EventFeed, Followed
from whisp_cli.desk.gateway import GatewayClient, GatewayError
from whisp_cli.desk.live import LivePress, PartialRouter, StreamBroken
from whisp_recorder import Recording
from whisp_recorder.convert import wav_bytes
from whisp_shared.options import RecordingOptions
from whisp_shared.queue import QueuePosition
from whisp_shared.views import RecordingQueued, Transcript


class Phase(StrEnum):
    COMMITTING = "finishing"
    UPLOADING = "uploading"
    TRANSCRIBING = "transcribing"
    THINKING = "waiting for the agent"
    DONE = "done"
    FAILED = "failed"


@dataclass
class Turn:
    """What the UI shows about one recording; written by the turn's thread only."""

    number: int
    duration_s: float
    stopped_at: float
    """time.monotonic() when the recording stopped (the inferred or real key release)."""
    agent_id: str | None = None
    phase: Phase = Phase.UPLOADING
    recording_id: str | None = None
    transcript: str | None = None
    empty: bool = False
    answer: str | None = None
    error: str | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    done: threading.Event = field(default_factory=threading.Event)
    live: LivePress | None = None
    """The press's stream, when it streamed: its words show until the final text does."""
    streamed: bool = False
    """The recording went over the socket (False: it was uploaded)."""
    notice: str | None = None
    """Something the person should know about this turn that is not a failure."""
    queue: QueuePosition | None = None
    """Where the recording waits for a transcription worker, as the gateway last said
    (None: not known to wait, or a worker has it): the UI shows it instead of a bare
    "transcribing…", which would hide a long queue or one no worker reads."""

    def __post_init__(self) -> None:
        if self.live is not None and self.phase is Phase.UPLOADING:
            self.phase = Phase.COMMITTING

    @property
    def finished(self) -> bool:
        return self.phase in (Phase.DONE, Phase.FAILED)

    def mark(self, name: str) -> None:
        """Record milliseconds since the stop as `stop_to_<name>_ms` (for `--timings-file`)."""
        elapsed = (time.monotonic() - self.stopped_at) * 1000
        self.timings_ms[f"stop_to_{name}_ms"] = round(elapsed, 1)


@dataclass(frozen=True)
class TurnDeps:
    client: GatewayClient
    feed: EventFeed
    options: RecordingOptions
    transcript_timeout_s: float = 120.0
    agent_timeout_s: float = 300.0
    on_change: Callable[[Turn], None] = lambda _turn: None
    router: PartialRouter = field(default_factory=PartialRouter)
    """Where the feed's partials go (`feed.on_partial`): to the press that owns them."""
    commit_timeout_s: float = 10.0
    """How long a released press waits for the socket to confirm its commit before the
    audio is uploaded instead."""
    stream_url: str | None = None
    """The Realtime socket to stream presses to (None: upload every press)."""


def in_line(place: QueuePosition) -> str:
    """A place in the queue in a few words, the same in every UI: "3rd in line, ~8 s";
    "at least" when more wait than were counted, "no worker running" when none reads it."""
    nth = "next" if place.position == 1 else _ordinal(place.position)
    words = f"{'at least ' if place.at_least else ''}{nth} in line"
    if place.workers == 0:
        return f"{words}, no worker running"
    if place.eta_s is None:
        return words
    return f"{words}, {'over ' if place.at_least else '~'}{_seconds(place.eta_s)}"


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _seconds(seconds: float) -> str:
    """An estimate's size, not its digits: "8 s", "2 min"."""
    return f"{max(1, round(seconds))} s" if seconds < 90 else f"{round(seconds / 60)} min"


def new_press(deps: TurnDeps) -> LivePress | None:
    """A stream for the press about to start, or None when presses are uploaded."""
    if deps.stream_url is None:
        return None
    return LivePress.open(deps.router, deps.stream_url, deps.client.token, deps.options)


def start_turn(turn: Turn, recording: Recording, deps: TurnDeps) -> threading.Thread:
    thread = threading.Thread(
        target=_run, args=(turn, recording, deps), name=f"turn-{turn.number}", daemon=True
    )
    thread.start()
    return thread


def _run(turn: Turn, recording: Recording, deps: TurnDeps) -> None:
    try:
        _follow(turn, recording, deps)
    except GatewayError as exc:
        _fail(turn, str(exc))
    except Exception as exc:  # a bug must show up as a failed turn, not a silent hang
        _fail(turn, f"unexpected error: {exc!r}")
    finally:
        if turn.recording_id:
            deps.feed.forget(turn.recording_id)
            deps.router.retire(turn.recording_id)
        if turn.live is not None:
            turn.live.finish()
            if (first := turn.live.first_words_ms()) is not None:
                turn.timings_ms["press_to_first_words_ms"] = first
        turn.done.set()
        deps.on_change(turn)


def _fail(turn: Turn, message: str) -> None:
    turn.error = message
    turn.phase = Phase.FAILED


def _follow(turn: Turn, recording: Recording, deps: TurnDeps) -> None:
    turn.recording_id = _send(turn, recording, deps)
    snapshots = deps.feed.watch(turn.recording_id)
    turn.phase = Phase.TRANSCRIBING
    deps.on_change(turn)

    transcript = _next(turn, deps, snapshots, _transcribed, deps.transcript_timeout_s)
    turn.mark("transcript")
    if transcript is None:
        where = f"still {in_line(turn.queue)}" if turn.queue else "still queued?"
        _fail(turn, f"no transcript after {deps.transcript_timeout_s:.0f} s ({where})")
        return
    turn.queue = None  # in case the gateway that placed it stopped before saying so
    if transcript.status == "failed":
        _fail(turn, f"transcription failed: {transcript.error_message} ({transcript.error_code})")
        return
    turn.transcript = transcript.text.strip()
    turn.empty = not turn.transcript
    if transcript.settled:
        turn.phase = Phase.DONE
        if transcript.answers:
            _show_answer(turn, transcript)
        return
    turn.phase = Phase.THINKING
    deps.on_change(turn)

    answered = _next(turn, deps, snapshots, lambda t: t.settled, deps.agent_timeout_s)
    turn.mark("answer")
    if answered is None:
        _fail(turn, f"no answer from the agent after {deps.agent_timeout_s:.0f} s")
    else:
        _show_answer(turn, answered)


def _send(turn: Turn, recording: Recording, deps: TurnDeps) -> str:
    """The recording's id: committed on its stream, or else uploaded."""
    if turn.live is not None:
        try:
            recording_id = turn.live.commit(deps.commit_timeout_s)
        except StreamBroken as exc:
            turn.notice = f"streaming failed ({exc}); uploading the clip instead"
            turn.phase = Phase.UPLOADING
            deps.on_change(turn)
        else:
            turn.mark("committed")
            turn.streamed = True
            return recording_id
    data = wav_bytes(recording.samples, recording.sample_rate)
    turn.mark("encoded")
    recording_id = deps.client.submit(data, deps.options)
    turn.mark("uploaded")
    deps.router.retire(recording_id)
    return recording_id


def _show_answer(turn: Turn, transcript: Transcript) -> None:
    answer = transcript.answers[-1]
    if answer.status == "failed":
        _fail(turn, f"the agent failed: {answer.error_message} ({answer.error_code})")
    else:
        turn.answer = answer.output.strip()
        turn.phase = Phase.DONE


def _transcribed(transcript: Transcript) -> bool:
    return transcript.status != "processing"


def _next(
    turn: Turn,
    deps: TurnDeps,
    snapshots: queue.Queue[Followed],
    ready: Callable[[Transcript], bool],
    timeout_s: float,
) -> Transcript | None:
    """The first snapshot that is `ready` within `timeout_s`; earlier ones are skipped.
    Places in the queue met on the way go to `turn.queue` (on this thread, its writer)."""
    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        try:
            item = snapshots.get(timeout=left)
        except queue.Empty:
            return None
        if isinstance(item, RecordingQueued):
            turn.queue = item.queue
            deps.on_change(turn)
        elif ready(item):
            return item
    return None
