"""The hotkey chord from real press/release events (keys as strings; pynput's are
hashables the same way)."""

from __future__ import annotations

import pytest

from whisp_cli.desk.ptt import Edge
from whisp_cli.hotkey.chord import ChordTracker


def chord(grace_s: float = 0.06) -> ChordTracker:
    return ChordTracker.of(["ctrl", "shift", "r"], grace_s)


def test_press_fires_when_the_last_key_of_the_chord_goes_down() -> None:
    c = chord()
    assert c.press("ctrl", 0.0) is None
    assert c.press("shift", 0.01) is None
    assert c.press("r", 0.02) is Edge.PRESS
    assert c.down


def test_auto_repeat_presses_change_nothing() -> None:
    c = chord()
    for key in ("ctrl", "shift", "r"):
        c.press(key, 0.0)
    assert [c.press("r", 0.5 + i * 0.03) for i in range(20)] == [None] * 20


def test_release_of_any_chord_key_ends_the_hold_after_the_grace() -> None:
    c = chord(grace_s=0.06)
    for key in ("ctrl", "shift", "r"):
        c.press(key, 0.0)
    assert c.release("ctrl", 1.0) is None
    assert c.deadline == pytest.approx(1.06)
    assert c.release("shift", 1.01) is None
    assert c.poll(1.059) is None
    assert c.poll(1.06) is Edge.RELEASE
    assert c.release("r", 1.2) is None
    assert not c.down


def test_a_release_press_pair_within_the_grace_is_one_hold() -> None:
    """Some X setups report auto-repeat as release+press with the same timestamp."""
    c = chord()
    for key in ("ctrl", "shift", "r"):
        c.press(key, 0.0)
    for i in range(10):
        t = 0.6 + i * 0.03
        assert c.release("r", t) is None
        assert c.press("r", t) is None
        assert c.poll(t + 0.01) is None
    assert c.down


def test_zero_grace_releases_at_once() -> None:
    c = chord(grace_s=0.0)
    for key in ("ctrl", "shift", "r"):
        c.press(key, 0.0)
    assert c.release("r", 1.0) is Edge.RELEASE


def test_part_of_the_chord_or_other_keys_do_nothing() -> None:
    c = chord()
    assert c.press("ctrl", 0.0) is None
    assert c.press("r", 0.0) is None
    assert c.press("a", 0.0) is None
    assert c.release("a", 0.1) is None
    assert c.release("ctrl", 0.1) is None
    assert c.poll(1.0) is None
    assert not c.down


def test_an_empty_chord_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one key"):
        ChordTracker.of([])
