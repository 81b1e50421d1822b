"""Agents' answers while they are written: the event feed's live-only `AnswerDelta`s built
into each recording's text so far, for the live area to draw under its turn until the
snapshot with the stored answer arrives (then `view.finished` prints that one).

The rules are `AnswerDelta`'s (the web page's answering.js follows the same ones): a piece
of a new run drops the text so far and pieces of a dropped run are ignored; within a run a
sequence not above the last one appended is stale; a higher part starts a new text.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from whisp_shared.views import AnswerDelta

KEPT_RECORDINGS = 64
"""Answers of recordings no turn has claimed yet are kept this many at most."""


@dataclass(frozen=True)
class AnswerSoFar:
    agent_id: str
    text: str
    first_at: float
    """time.monotonic() when its first piece arrived."""


@dataclass
class _Building:
    run_id: str
    first_at: float
    dropped: set[str] = field(default_factory=set)
    sequence: int = -1
    part: int = -1
    agent_id: str = ""
    text: str = ""

    def take(self, delta: AnswerDelta) -> None:
        if delta.run_id in self.dropped:
            return
        if delta.run_id != self.run_id:
            self.dropped.add(self.run_id)
            self.run_id, self.sequence, self.part, self.text = delta.run_id, -1, -1, ""
        if delta.sequence <= self.sequence or delta.part < self.part:
            return
        if delta.part > self.part:
            self.part, self.text = delta.part, ""
        self.sequence = delta.sequence
        self.agent_id = delta.agent_id
        self.text += delta.delta


class AnswerBoard:
    """Thread-safe: the event feed's thread adds pieces (`__call__`), the UI reads `get`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._answers: dict[str, _Building] = {}

    def __call__(self, delta: AnswerDelta) -> None:
        with self._lock:
            building = self._answers.get(delta.recording_id)
            if building is None:
                building = _Building(delta.run_id, time.monotonic())
                self._answers[delta.recording_id] = building
                while len(self._answers) > KEPT_RECORDINGS:
                    del self._answers[next(iter(self._answers))]
            building.take(delta)

    def get(self, recording_id: str | None) -> AnswerSoFar | None:
        """The answer so far of `recording_id` (None: no words of it yet)."""
        with self._lock:
            building = self._answers.get(recording_id or "")
            if building is None or not building.text.strip():
                return None
            return AnswerSoFar(building.agent_id, building.text, building.first_at)

    def forget(self, recording_id: str | None) -> None:
        with self._lock:
            self._answers.pop(recording_id or "", None)
