"""The recorder core without HTTP: every transition, notifications, the max duration,
releasing the device on every way out, thread safety, and no leaks over hundreds of runs.

Audio comes from FileReplaySource (a real decoder and a real pacing thread playing a
440 Hz tone), so these tests run anywhere; the PulseAudio tests cover the microphone.
"""

from __future__ import annotations

import gc
import itertools
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tests.audio.conftest import TONE_AMPLITUDE
from tests.audio.sources import FailingSource
from whisp_recorder import (
    Action,
    FileReplaySource,
    InvalidTransition,
    Recorder,
    RecorderRegistry,
    RecorderState,
    RecorderStatus,
    SourceError,
)

IDLE, ARMED, RECORDING, PROCESSING = (
    RecorderState.IDLE,
    RecorderState.ARMED,
    RecorderState.RECORDING,
    RecorderState.PROCESSING,
)

# The whole table, written out here independently of the code's own TRANSITIONS.
EXPECTED: dict[tuple[RecorderState, Action], RecorderState] = {
    (IDLE, Action.ARM): ARMED,
    (ARMED, Action.START): RECORDING,
    (ARMED, Action.CANCEL): IDLE,
    (RECORDING, Action.STOP): PROCESSING,
    (RECORDING, Action.CANCEL): IDLE,
    (PROCESSING, Action.FINISH): IDLE,
}
TONE_DBFS = 20 * np.log10(TONE_AMPLITUDE / np.sqrt(2))  # -9.03


def bring_to(recorder: Recorder, state: RecorderState) -> None:
    """Walk the legal path from IDLE to `state`."""
    path = {IDLE: [], ARMED: ["arm"], RECORDING: ["arm", "start"]}
    for step in path.get(state, ["arm", "start", "stop"]):
        getattr(recorder, step)()
        if step == "start":
            time.sleep(0.05)
    assert recorder.state is state


def wait_until(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def replay(path: Path, **kwargs: object) -> FileReplaySource:
    kwargs.setdefault("after_end", "silence")
    return FileReplaySource(path, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("state", "action"),
    list(itertools.product(RecorderState, Action)),
    ids=str,
)
def test_every_state_action_pair(tone_wav: Path, state: RecorderState, action: Action) -> None:
    source = replay(tone_wav)
    recorder = Recorder(source)
    try:
        bring_to(recorder, state)
        expected = EXPECTED.get((state, action))
        if expected is None:
            with pytest.raises(InvalidTransition) as info:
                getattr(recorder, action.value)()
            assert info.value.state is state
            assert info.value.action is action
            assert info.value.code == "invalid_transition"
            assert f"cannot {action} while {state}" in info.value.message
            assert recorder.state is state  # an illegal action changes nothing
        else:
            getattr(recorder, action.value)()
            assert recorder.state is expected
        # The device is held exactly in ARMED and RECORDING.
        assert source.is_open == (recorder.state in (ARMED, RECORDING))
    finally:
        recorder.close()
    assert not source.is_open


def test_the_code_table_is_the_documented_table() -> None:
    from whisp_recorder import TRANSITIONS

    assert dict(TRANSITIONS) == EXPECTED


def test_subscribers_see_every_change_in_order(tone_wav: Path) -> None:
    recorder = Recorder(replay(tone_wav), level_interval_s=0.05)
    seen: list[RecorderStatus] = []
    recorder.subscribe(seen.append)
    recorder.subscribe(lambda _s: 1 / 0)  # a broken listener must not break recording
    recorder.arm()
    time.sleep(0.3)
    recorder.start()
    time.sleep(0.6)
    recording = recorder.stop()
    recorder.finish()

    changes = [(s.state, s.reason) for s in seen if s.reason != "level"]
    assert changes == [
        (ARMED, "arm"),
        (RECORDING, "start"),
        (PROCESSING, "stop"),
        (IDLE, "finish"),
    ]
    armed_ticks = [s for s in seen if s.reason == "level" and s.state is ARMED]
    ticks = [s for s in seen if s.reason == "level" and s.state is RECORDING]
    assert armed_ticks, "the meter must move while armed (before talking)"
    assert len(ticks) >= 5
    elapsed = [s.elapsed_s for s in ticks]
    assert elapsed == sorted(elapsed) and elapsed[-1] > 0.4
    for tick in ticks:
        assert tick.level_dbfs == pytest.approx(TONE_DBFS, abs=0.5)
    stop_status = next(s for s in seen if s.reason == "stop")
    assert stop_status.elapsed_s == pytest.approx(recording.duration_s, abs=0.01)
    assert recording.duration_s == pytest.approx(0.6, abs=0.12)
    assert recording.stopped_by == "stop"


def test_unsubscribe_stops_notifications(tone_wav: Path) -> None:
    recorder = Recorder(replay(tone_wav))
    seen: list[RecorderStatus] = []
    unsubscribe = recorder.subscribe(seen.append)
    recorder.arm()
    unsubscribe()
    count = len(seen)
    recorder.start()
    time.sleep(0.2)
    recorder.cancel()
    assert len(seen) == count


def test_stop_returns_16k_mono_float32_of_what_was_played(tmp_path: Path) -> None:
    """A 44.1 kHz stereo source comes back as 16 kHz mono, sample-aligned with the file."""
    from tests.support.speech import write_wav

    t = np.arange(16_000) / 16_000
    chirp = 0.4 * np.sin(2 * np.pi * (200 + 1500 * t) * t)
    path = write_wav(tmp_path / "chirp.wav", chirp)
    source = FileReplaySource(path, sample_rate=44_100)  # real time: start loses only ms
    recorder = Recorder(source)
    recorder.arm()
    recorder.start()
    wait_until(source.played.is_set)
    recording = recorder.stop()
    samples = recording.samples
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert recording.sample_rate == 16_000
    # Everything played after start is there (start raced the first blocks by a few ms).
    assert 0.95 <= recording.duration_s <= 1.01
    tail = samples[-8000:]
    assert np.corrcoef(tail, chirp[-8000:])[0, 1] > 0.99


def test_max_duration_stops_a_forgotten_recording(tone_wav: Path) -> None:
    source = replay(tone_wav)
    recorder = Recorder(source, max_duration_s=0.3)
    seen: list[RecorderStatus] = []
    recorder.subscribe(seen.append)
    recorder.arm()
    recorder.start()
    wait_until(lambda: recorder.state is PROCESSING, timeout=3)
    assert not source.is_open, "the device is released by the automatic stop"
    assert recorder.result is not None
    assert recorder.result.stopped_by == "max_duration"
    assert recorder.result.duration_s <= 0.3
    assert recorder.result.duration_s == pytest.approx(0.3, abs=0.05)
    assert [s.reason for s in seen if s.state is PROCESSING] == ["max_duration"]
    with pytest.raises(InvalidTransition):
        recorder.stop()  # already stopped by itself
    recorder.finish()
    assert recorder.state is IDLE and recorder.result is None


def test_max_duration_is_exact_even_when_audio_arrives_faster_than_real_time(
    tone_wav: Path,
) -> None:
    source = FileReplaySource(tone_wav, realtime=False)
    recorder = Recorder(source, max_duration_s=0.5)
    recorder.arm()
    recorder.start()
    wait_until(source.played.is_set)
    recording = recorder.stop()  # before the timer: the cap was applied frame by frame
    assert len(recording.samples) <= 8000
    recorder.finish()


@pytest.mark.parametrize("way_out", ["stop", "cancel_armed", "cancel_recording", "close"])
def test_the_device_is_released(tone_wav: Path, way_out: str) -> None:
    source = replay(tone_wav)
    recorder = Recorder(source, max_duration_s=30)
    recorder.arm()
    if way_out != "cancel_armed":
        recorder.start()
        time.sleep(0.05)
    {
        "stop": recorder.stop,
        "cancel_armed": recorder.cancel,
        "cancel_recording": recorder.cancel,
        "close": recorder.close,
    }[way_out]()
    assert not source.is_open
    # The replay thread is joined on close; a cancelled timer's thread exits on its own.
    wait_until(
        lambda: not any(t.name in ("file-replay", "recorder-max-duration") for t in _alive())
    )


def test_a_failing_source_is_released_and_reported(tone_wav: Path) -> None:
    source = FailingSource(blocks_before_failure=5)
    recorder = Recorder(source)
    seen: list[RecorderStatus] = []
    recorder.subscribe(seen.append)
    recorder.arm()
    recorder.start()
    wait_until(lambda: recorder.state is IDLE)
    assert not source.is_open, "IDLE is only shown once the device is released"
    assert source.closes == 1
    wait_until(lambda: any(s.reason == "error" for s in seen))
    errors = [s for s in seen if s.reason == "error"]
    assert len(errors) == 1 and errors[0].state is IDLE
    assert "unplugged" in (errors[0].error or "")
    assert "unplugged" in (recorder.status().error or "")
    with pytest.raises(InvalidTransition):
        recorder.stop()
    # The recorder is usable again after the failure.
    recorder.source = replay(tone_wav)
    recorder.arm()
    assert recorder.status().error is None
    recorder.close()


def test_a_source_that_cannot_open_leaves_the_recorder_idle(tmp_path: Path) -> None:
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt nonsense" * 4)
    recorder = Recorder(FileReplaySource(broken))
    with pytest.raises(SourceError, match="cannot replay"):
        recorder.arm()
    assert recorder.state is IDLE
    assert "cannot replay" in (recorder.status().error or "")


def test_racing_stops_and_cancels_give_exactly_one_winner(tone_wav: Path) -> None:
    """Eight threads press stop/cancel at once (the API, the hotkey and the timer can)."""
    for _ in range(20):
        recorder = Recorder(replay(tone_wav))
        recorder.arm()
        recorder.start()
        barrier = threading.Barrier(8)
        outcomes: list[str] = []

        def press(
            action: str, recorder: Recorder = recorder, barrier=barrier, outcomes=outcomes
        ) -> None:
            barrier.wait()
            try:
                getattr(recorder, action)()
                outcomes.append(action)
            except InvalidTransition:
                outcomes.append("refused")

        threads = [
            threading.Thread(target=press, args=("stop" if i % 2 else "cancel",)) for i in range(8)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=5)
        assert outcomes.count("refused") == 7, outcomes
        assert recorder.state in (PROCESSING, IDLE)
        assert not recorder.source.is_open
        recorder.close()


def _best_match(recorded: np.ndarray, reference: np.ndarray) -> float:
    """Peak normalised cross-correlation of `recorded` inside `reference`."""
    ref = reference[: len(recorded) + 16_000]
    corr = np.correlate(ref, recorded, mode="valid")
    energy = np.sqrt(np.convolve(ref**2, np.ones(len(recorded)), mode="valid"))
    return float(np.max(np.abs(corr) / (energy * np.linalg.norm(recorded) + 1e-9)))


def test_registry_runs_several_recordings_at_once(speech, tone_wav: Path) -> None:
    """Three recorders (two users, two devices) record at once; each gets its own audio."""
    from tests.support.speech import read_wav

    registry = RecorderRegistry()
    files = {
        ("alice", "mic"): speech["late-for-dinner"][1],
        ("bob", "mic"): speech["walk-the-dog"][1],
        ("alice", "usb"): tone_wav,
    }
    recorders = {
        key: registry.get_or_create(key, lambda path=path: Recorder(FileReplaySource(path)))
        for key, path in files.items()
    }
    assert registry.get_or_create(("bob", "mic"), lambda: pytest.fail("not reused"))
    for recorder in recorders.values():
        recorder.arm()
        recorder.start()
    assert registry.active_count() == 3 and registry.holding_device() == 3
    time.sleep(1.0)
    recordings = {key: recorder.stop() for key, recorder in recorders.items()}
    assert registry.holding_device() == 0 and registry.active_count() == 3
    references = {key: read_wav(path)[0] for key, path in files.items()}
    for key, recording in recordings.items():
        assert recording.duration_s == pytest.approx(1.0, abs=0.15)
        first = int(np.argmax(np.abs(recording.samples) > 1e-3))
        voiced = recording.samples[first : first + 8000]
        scores = {other: _best_match(voiced, ref) for other, ref in references.items()}
        assert max(scores, key=scores.__getitem__) == key, scores
        assert scores[key] > 0.99
    registry.close_all()
    assert registry.active_count() == 0
    assert registry.get(("alice", "mic")) is None


def test_shutdown_releases_every_device(tone_wav: Path) -> None:
    registry = RecorderRegistry()
    sources = [replay(tone_wav) for _ in range(4)]
    for i, source in enumerate(sources):
        recorder = registry.get_or_create((f"user{i}", "mic"), lambda s=source: Recorder(s))
        bring_to(recorder, [IDLE, ARMED, RECORDING, PROCESSING][i])
    registry.close_all()
    assert not any(source.is_open for source in sources)


def _alive() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.is_alive()]


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_hundreds_of_recordings_leak_nothing(tone_wav: Path) -> None:
    source = FileReplaySource(tone_wav, realtime=False)
    recorder = Recorder(source, max_duration_s=60)
    recorder.arm()  # warm up: decode once, first thread
    recorder.cancel()
    gc.collect()
    threads, fds = threading.active_count(), _fds()
    for i in range(300):
        recorder.arm()
        if i % 3 == 0:
            recorder.cancel()
            continue
        recorder.start()
        if i % 3 == 1:
            recorder.cancel()
        else:
            recorder.stop()
            recorder.finish()
    gc.collect()
    time.sleep(0.05)
    assert threading.active_count() == threads, [t.name for t in _alive()]
    assert _fds() <= fds
    assert not source.is_open
