"""Hold-to-talk without key-up events: infer press and release of one key from the
characters a terminal sends while it is held.

A held key gives one character at once, the first auto-repeat after the keyboard's
delay (250-660 ms), then one every 25-40 ms. There is no release event, only the
characters stopping. So the key counts as released once no character came for:

- `initial_s` (700 ms) until the repeat rate is known (after the second repeat), long
  enough to outlast the repeat delay, so a held key is not dropped before repeats start;
- once repeats flow, `max(repeat_floor_s, 3 x the measured repeat interval)`, capped at
  `initial_s`: 120 ms for a normal 30 ms repeat rate (jitter, even tmux's ~50 ms, fits),
  and longer for someone who set a slow repeat rate.

A tap (no repeat) therefore ends 700 ms after the press; a hold ends ~120 ms after the
finger lifts. Everything here is a pure function of timestamps, so it is tested without
a terminal.
"""

from __future__ import annotations

from dataclasses import dataclass

from whisp_cli.desk.ptt import Edge

REPEAT_FACTOR = 3.0
"""Release after this many missing repeats (at the measured interval)."""
EMA_WEIGHT = 0.3
"""Weight of the newest gap in the running repeat interval."""


@dataclass
class KeyHold:
    """Tracks one key's inferred physical state from its characters' arrival times."""

    initial_s: float = 0.7
    repeat_floor_s: float = 0.12
    held: bool = False
    pressed_at: float | None = None
    last_at: float | None = None
    repeats: int = 0
    interval_s: float | None = None
    """Running (exponentially weighted) repeat interval, once two repeats came."""

    @property
    def timeout_s(self) -> float:
        """The silence that ends the current hold."""
        if self.interval_s is None:  # no repeat yet, or only the first: rate unknown
            return self.initial_s
        adaptive = REPEAT_FACTOR * self.interval_s
        return min(self.initial_s, max(self.repeat_floor_s, adaptive))

    @property
    def deadline(self) -> float | None:
        """When the key will count as released if nothing else arrives (None: not held)."""
        if not self.held or self.last_at is None:
            return None
        return self.last_at + self.timeout_s

    def char(self, now: float) -> list[Edge]:
        """A character of this key arrived at `now`: [PRESS] for a new press, [] for a
        repeat, or [RELEASE, PRESS] when the previous hold had already timed out (a
        reader that woke late must not swallow that release)."""
        edges: list[Edge] = []
        if (released := self.poll(now)) is not None:
            edges.append(released)
        if not self.held:
            self.held, self.pressed_at, self.last_at = True, now, now
            self.repeats, self.interval_s = 0, None
            return [*edges, Edge.PRESS]
        assert self.last_at is not None
        gap = now - self.last_at
        if self.repeats >= 1:  # the first gap is the keyboard's delay, not its rate
            self.interval_s = (
                gap
                if self.interval_s is None
                else EMA_WEIGHT * gap + (1 - EMA_WEIGHT) * self.interval_s
            )
        self.repeats += 1
        self.last_at = now
        return edges

    def poll(self, now: float) -> Edge | None:
        """RELEASE once the silence outlasts the timeout; at most once per hold."""
        deadline = self.deadline
        if deadline is not None and now >= deadline:
            self.held = False
            return Edge.RELEASE
        return None
