"""Push-to-talk as a tiny state machine shared by the terminal and the hotkey daemon:
key edges (press, release) in, recording commands (start, stop) out.

The terminal infers its edges from auto-repeat timing (`record.release`); the hotkey
daemon gets real ones from X. Both feed them here, so hold and toggle behave the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Edge(StrEnum):
    PRESS = "press"
    RELEASE = "release"


class Command(StrEnum):
    START = "start"
    STOP = "stop"


@dataclass
class PushToTalk:
    """Turns key edges into recording commands.

    hold: press starts, release stops. toggle: each press starts or stops, releases are
    ignored (so auto-repeat while the key is down can never flip it back).
    """

    toggle: bool = False
    recording: bool = False

    def on(self, edge: Edge) -> Command | None:
        if edge is Edge.PRESS:
            if not self.recording:
                self.recording = True
                return Command.START
            if self.toggle:
                self.recording = False
                return Command.STOP
            return None
        if edge is Edge.RELEASE and self.recording and not self.toggle:
            self.recording = False
            return Command.STOP
        return None

    def stopped(self) -> None:
        """The recording ended for another reason (max duration, an error)."""
        self.recording = False
