"""Release inference for hold-to-talk in a terminal, driven by timestamps alone."""

from __future__ import annotations

import pytest

from whisp_cli.desk.ptt import Command, Edge, PushToTalk
from whisp_cli.record.release import KeyHold


def hold_key(
    hold: KeyHold, start: float, until: float, delay: float = 0.5, every: float = 0.03
) -> list[Edge]:
    """A terminal's characters for a key held from `start` to `until`: one at once, the
    first repeat after `delay`, then one every `every`. Returns the edges seen."""
    edges = list(hold.char(start))
    t = start + delay
    while t <= until:
        assert hold.poll(t) is None, f"released early at {t - start:.3f}"
        edges += hold.char(t)
        t += every
    return edges


def first_release(hold: KeyHold, since: float, step: float = 0.001) -> float:
    t = since
    while hold.poll(t) is None:
        t += step
        assert t < since + 5, "never released"
    return t


def test_a_tap_releases_after_the_initial_timeout() -> None:
    hold = KeyHold(initial_s=0.7, repeat_floor_s=0.12)
    assert hold.char(10.0) == [Edge.PRESS]
    assert hold.poll(10.699) is None
    assert hold.poll(10.7) is Edge.RELEASE
    assert hold.poll(10.8) is None, "one release per hold"
    assert not hold.held


def test_the_initial_timeout_outlasts_a_slow_keyboard_repeat_delay() -> None:
    hold = KeyHold()
    assert hold_key(hold, 0.0, 2.0, delay=0.66) == [Edge.PRESS]
    assert hold.held


def test_once_repeats_flow_release_comes_120_ms_after_the_last_character() -> None:
    hold = KeyHold(initial_s=0.7, repeat_floor_s=0.12)
    edges = hold_key(hold, 0.0, 3.0)
    last = hold.last_at
    assert edges == [Edge.PRESS] and last is not None
    assert hold.timeout_s == pytest.approx(0.12)
    assert first_release(hold, last) == pytest.approx(last + 0.12, abs=0.002)


def test_tmux_jitter_does_not_release_a_held_key() -> None:
    """Repeats every 30 ms with up to 50 ms of delivery jitter (tmux on two cores)."""
    hold = KeyHold()
    gaps = [0.5] + [0.03, 0.08, 0.005, 0.06, 0.03, 0.001, 0.079] * 20
    t = 0.0
    assert hold.char(t) == [Edge.PRESS]
    for gap in gaps:
        t += gap
        assert hold.poll(t) is None
        assert hold.char(t) == []
    assert hold.held


def test_the_timeout_adapts_to_a_slow_repeat_rate_and_is_capped() -> None:
    slow = KeyHold(initial_s=0.7, repeat_floor_s=0.12)
    hold_key(slow, 0.0, 3.0, every=0.1)
    assert slow.timeout_s == pytest.approx(0.3, abs=0.01)  # 3 x 100 ms
    very_slow = KeyHold(initial_s=0.7, repeat_floor_s=0.12)
    hold_key(very_slow, 0.0, 5.0, every=0.4)
    assert very_slow.timeout_s == pytest.approx(0.7)  # never longer than the first wait


def test_a_new_press_after_the_release_starts_a_new_hold() -> None:
    hold = KeyHold()
    hold_key(hold, 0.0, 1.0)
    released = first_release(hold, 1.0)
    assert hold.char(released + 0.5) == [Edge.PRESS]
    assert hold.repeats == 0 and hold.timeout_s == pytest.approx(0.7)


def test_a_late_reader_sees_the_release_before_the_next_press() -> None:
    """The loop may wake only when the next press arrives; the release must not vanish."""
    hold = KeyHold()
    hold_key(hold, 0.0, 1.0)
    assert hold.char(3.0) == [Edge.RELEASE, Edge.PRESS]


def test_deadline_tells_the_loop_when_to_wake() -> None:
    hold = KeyHold()
    assert hold.deadline is None
    hold.char(1.0)
    assert hold.deadline == pytest.approx(1.7)


# ------------------------------------------------------------------ push-to-talk


def run(ptt: PushToTalk, edges: list[Edge]) -> list[Command | None]:
    return [ptt.on(edge) for edge in edges]


def test_hold_mode_starts_on_press_and_stops_on_release() -> None:
    ptt = PushToTalk(toggle=False)
    assert run(ptt, [Edge.PRESS, Edge.PRESS, Edge.RELEASE, Edge.RELEASE]) == [
        Command.START,
        None,
        Command.STOP,
        None,
    ]


def test_toggle_mode_ignores_releases_and_flips_on_each_press() -> None:
    ptt = PushToTalk(toggle=True)
    assert run(ptt, [Edge.PRESS, Edge.RELEASE, Edge.PRESS, Edge.RELEASE, Edge.PRESS]) == [
        Command.START,
        None,
        Command.STOP,
        None,
        Command.START,
    ]


def test_toggle_mode_through_release_inference_a_held_space_does_not_flip_back() -> None:
    """Holding SPACE in toggle mode: repeats are one press, so it starts once; the next
    separate press stops."""
    hold, ptt = KeyHold(), PushToTalk(toggle=True)
    commands = [ptt.on(e) for e in hold_key(hold, 0.0, 2.0)]
    release = first_release(hold, 2.0)
    commands.append(ptt.on(Edge.RELEASE))
    commands += [ptt.on(e) for e in hold.char(release + 1.0)]
    assert [c for c in commands if c] == [Command.START, Command.STOP]


def test_a_recording_stopped_elsewhere_resets_the_state() -> None:
    ptt = PushToTalk()
    ptt.on(Edge.PRESS)
    ptt.stopped()  # max duration reached
    assert ptt.on(Edge.RELEASE) is None
    assert ptt.on(Edge.PRESS) is Command.START
