"""A chord (e.g. Ctrl+Shift+R) held or not, from real key press/release events.

pynput's `GlobalHotKeys` fires on press only; hold-to-talk needs the release too, so
this tracks the set of held keys itself: PRESS when the last key of the chord goes down
while the others are held, RELEASE when any of them comes up.

Two things real keyboards add:
- auto-repeat sends more presses of a held key (harmless: the set does not change);
- some X setups report auto-repeat as release+press pairs. A RELEASE is therefore only
  acted on after `grace_s` without the chord coming back.

Pure: keys are any hashables (pynput's canonical keys in use, strings in tests) and
time is passed in.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field

from whisp_cli.desk.ptt import Edge


@dataclass
class ChordTracker:
    chord: frozenset[Hashable]
    grace_s: float = 0.06
    held: set[Hashable] = field(default_factory=set)
    down: bool = False
    """The chord counts as held (a PRESS was reported and no RELEASE yet)."""
    _release_due: float | None = None

    @classmethod
    def of(cls, keys: Iterable[Hashable], grace_s: float = 0.06) -> ChordTracker:
        chord = frozenset(keys)
        if not chord:
            raise ValueError("a hotkey needs at least one key")
        return cls(chord, grace_s)

    @property
    def deadline(self) -> float | None:
        """When a pending release becomes final."""
        return self._release_due

    def press(self, key: Hashable, now: float) -> Edge | None:
        self.held.add(key)
        if not self.chord <= self.held:
            return None
        if self._release_due is not None:  # came back within the grace: same hold
            self._release_due = None
            return None
        if self.down:
            return None  # auto-repeat
        self.down = True
        return Edge.PRESS

    def release(self, key: Hashable, now: float) -> Edge | None:
        self.held.discard(key)
        if self.down and key in self.chord and self._release_due is None:
            self._release_due = now + self.grace_s
        return self.poll(now)

    def poll(self, now: float) -> Edge | None:
        if self._release_due is not None and now >= self._release_due:
            self._release_due = None
            self.down = False
            return Edge.RELEASE
        return None
