"""The recorder: drives an AudioSource through the state machine and hands back 16 kHz
mono float32 audio on stop.

Threads: the source calls back on its own thread (PortAudio's or a replay thread), the
max-duration timer fires on another, errors are handled on a third, and the API calls
come from wherever the caller runs. Three locks keep that safe:

- `_op` serialises whole operations (open/close of the source included), so a cancel
  can never race an arm on the same device. The audio callback never takes it.
- `_state` guards the fields a status snapshot reads; held only for a few lines.
- `_notify` (re-entrant) delivers one notification at a time, computed inside it, so
  subscribers see states in the order they happened.

Subscribers run on the thread that caused the change and must return quickly without
calling back into the recorder (post the status to a queue or an event loop instead).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import numpy as np
import numpy.typing as npt

from whisp_recorder.convert import resample, to_mono
from whisp_recorder.level import FLOOR_DBFS, LevelMeter
from whisp_recorder.machine import (
    ACTIVE_STATES,
    Action,
    InvalidTransition,
    RecorderState,
    next_state,
)
from whisp_recorder.source import AudioSource, Frames, SourceError
from whisp_shared.audio import TARGET_RATE
from whisp_shared.logs import get_logger

log = get_logger(__name__)

Reason = Literal["arm", "start", "stop", "cancel", "finish", "max_duration", "error", "level"]


@dataclass(frozen=True)
class RecorderStatus:
    """One notification: where the recorder is and why it told you."""

    state: RecorderState
    elapsed_s: float
    level_dbfs: float
    reason: Reason
    error: str | None = None


@dataclass(frozen=True)
class Recording:
    """A finished recording: 16 kHz mono float32."""

    samples: npt.NDArray[np.float32] = field(repr=False)
    started_at: datetime
    stopped_by: Literal["stop", "max_duration"]
    sample_rate: int = TARGET_RATE

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate


Subscriber = Callable[[RecorderStatus], None]


class Recorder:
    def __init__(
        self,
        source: AudioSource,
        *,
        max_duration_s: float | None = 600.0,
        level_interval_s: float = 0.1,
    ) -> None:
        self.source = source
        self.max_duration_s = max_duration_s
        self.level_interval_s = level_interval_s
        self._op = threading.Lock()
        self._state_lock = threading.Lock()
        self._notify_lock = threading.RLock()
        self._frames_lock = threading.Lock()
        self._state = RecorderState.IDLE
        self._subscribers: list[Subscriber] = []
        self._failed_subscribers: set[int] = set()  # logged once each, not per tick
        self._meter = LevelMeter(TARGET_RATE)
        self._blocks: list[Frames] = []
        self._captured = 0
        self._max_frames: int | None = None
        self._capturing = False
        self._started: float | None = None
        self._started_at = datetime.now(UTC)
        self._stopped_elapsed = 0.0
        self._last_level = 0.0
        self._timer: threading.Timer | None = None
        self._generation = 0  # bumped on every arm: stale errors/timers are ignored
        self.result: Recording | None = None
        """The audio of the last stop, kept while PROCESSING."""
        self.last_error: str | None = None

    # ------------------------------------------------------------------ observing

    @property
    def state(self) -> RecorderState:
        return self._state

    def status(self, reason: Reason = "level") -> RecorderStatus:
        with self._state_lock:
            state = self._state
            if state is RecorderState.RECORDING and self._started is not None:
                elapsed = time.monotonic() - self._started
            elif state is RecorderState.PROCESSING:
                elapsed = self._stopped_elapsed
            else:
                elapsed = 0.0
            level = self._meter.dbfs if state in ACTIVE_STATES else FLOOR_DBFS
            error = self.last_error if reason == "error" or state is RecorderState.IDLE else None
        return RecorderStatus(state, round(elapsed, 3), level, reason, error)

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Call `subscriber` on every change; returns a function that unsubscribes."""
        with self._notify_lock:
            self._subscribers.append(subscriber)

        def unsubscribe() -> None:
            with self._notify_lock:
                if subscriber in self._subscribers:
                    self._subscribers.remove(subscriber)

        return unsubscribe

    def _notify(self, reason: Reason) -> None:
        with self._notify_lock:
            status = self.status(reason)
            if reason == "level" and status.state not in ACTIVE_STATES:
                return  # a late block from a source being closed: not news
            for subscriber in list(self._subscribers):
                try:
                    subscriber(status)
                except Exception as exc:  # a broken listener must not break the recording
                    if id(subscriber) not in self._failed_subscribers:
                        self._failed_subscribers.add(id(subscriber))
                        log.warning("recorder subscriber failed", error=repr(exc))

    # ------------------------------------------------------------------ actions

    def _move(self, action: Action) -> RecorderState:
        """Check and apply one transition; returns the state it left."""
        with self._state_lock:
            before = self._state
            self._state = next_state(before, action)
            return before

    def arm(self) -> None:
        """IDLE -> ARMED: open the device. On failure the recorder stays IDLE."""
        with self._op:
            if self._state is not RecorderState.IDLE:
                raise InvalidTransition(self._state, Action.ARM)
            self._generation += 1
            generation = self._generation
            self._meter = LevelMeter(TARGET_RATE)
            self.last_error = None
            try:
                self.source.open(self._on_frames, lambda exc: self._on_error(exc, generation))
            except SourceError as exc:
                self.last_error = str(exc)
                raise
            # The source knows its real rate only once open.
            self._meter = LevelMeter(self.source.sample_rate)
            self._move(Action.ARM)
        self._notify("arm")

    def start(self) -> None:
        """ARMED -> RECORDING: keep audio from now on, for at most `max_duration_s`."""
        with self._op:
            with self._frames_lock:
                if self._state is not RecorderState.ARMED:
                    raise InvalidTransition(self._state, Action.START)
                self._blocks = []
                self._captured = 0
                self._max_frames = (
                    None
                    if self.max_duration_s is None
                    else round(self.max_duration_s * self.source.sample_rate)
                )
                self._capturing = True
                self._started = time.monotonic()
                self._started_at = datetime.now(UTC)
                self._move(Action.START)
            if self.max_duration_s is not None:
                generation = self._generation
                self._timer = threading.Timer(self.max_duration_s, self._auto_stop, [generation])
                self._timer.daemon = True
                self._timer.name = "recorder-max-duration"
                self._timer.start()
        self._notify("start")

    def stop(self) -> Recording:
        """RECORDING -> PROCESSING: release the device and return the audio."""
        with self._op:
            recording = self._stop_locked("stop")
        self._notify("stop")
        return recording

    def _stop_locked(self, by: Literal["stop", "max_duration"]) -> Recording:
        """Keep no more audio, release the device, convert; only *then* show PROCESSING, so
        whoever sees it may rely on the device being free and `result` being there."""
        with self._frames_lock:
            if self._state is not RecorderState.RECORDING:
                raise InvalidTransition(self._state, Action.STOP)
            self._capturing = False
            blocks, self._blocks = self._blocks, []
        self._cancel_timer()
        rate = self.source.sample_rate
        self.source.close()
        samples = resample(to_mono(blocks), rate)
        recording = Recording(samples, self._started_at, by)
        with self._state_lock:
            self._stopped_elapsed = recording.duration_s
            self.result = recording
        self._move(Action.STOP)
        return recording

    def cancel(self) -> None:
        """ARMED or RECORDING -> IDLE: release the device, drop the audio."""
        with self._op:
            self._release(Action.CANCEL)
        self._notify("cancel")

    def _release(self, action: Action) -> None:
        """Close the source, *then* show the new state: whoever sees IDLE may rely on the
        device being free."""
        with self._frames_lock:
            next_state(self._state, action)  # refuse before touching anything
            self._capturing = False
            self._blocks = []
        self._cancel_timer()
        self.source.close()
        self._move(action)

    def finish(self) -> None:
        """PROCESSING -> IDLE: the caller is done with `result` (stored, or given up)."""
        with self._op:
            self._move(Action.FINISH)
            with self._state_lock:
                self.result = None
        self._notify("finish")

    def close(self) -> None:
        """Shutdown: release the device whatever the state; leaves the recorder IDLE."""
        with self._op:
            state = self._state
            if state in ACTIVE_STATES:
                self._release(Action.CANCEL)
            elif state is RecorderState.PROCESSING:
                self._move(Action.FINISH)
                self.result = None
            self._cancel_timer()
            self.source.close()
        if state is not RecorderState.IDLE:
            self._notify("cancel")

    # ------------------------------------------------------------------ threads

    def _on_frames(self, frames: Frames) -> None:
        """Audio thread: keep the block (up to the limit), update the meter, maybe notify."""
        self._meter.update(frames)
        with self._frames_lock:
            if self._capturing:
                if self._max_frames is not None:
                    frames = frames[: max(0, self._max_frames - self._captured)]
                if len(frames):
                    self._blocks.append(frames)
                    self._captured += len(frames)
        now = time.monotonic()
        if now - self._last_level >= self.level_interval_s:
            self._last_level = now
            self._notify("level")

    def _auto_stop(self, generation: int) -> None:
        """Timer thread: a forgotten recording stops itself at `max_duration_s`."""
        with self._op:
            if generation != self._generation or self._state is not RecorderState.RECORDING:
                return
            recording = self._stop_locked("max_duration")
        log.info("recording reached its maximum duration", seconds=round(recording.duration_s, 2))
        self._notify("max_duration")

    def _on_error(self, exc: Exception, generation: int) -> None:
        """Any thread (often PortAudio's, which must not close its own stream): hand the
        cleanup to a fresh thread."""
        threading.Thread(
            target=self._fail, args=(exc, generation), name="recorder-error", daemon=True
        ).start()

    def _fail(self, exc: Exception, generation: int) -> None:
        with self._op:
            if generation != self._generation or self._state not in ACTIVE_STATES:
                return
            log.warning("audio source failed; recording dropped", error=str(exc))
            with self._frames_lock:
                self._capturing = False
                self._blocks = []
            self._cancel_timer()
            self.source.close()
            with self._state_lock:
                self.last_error = f"the audio source failed: {exc}"
                self._state = RecorderState.IDLE
        self._notify("error")

    def _cancel_timer(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
