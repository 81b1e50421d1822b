"""Real capture: a PulseAudio server started here, speech played into its null sink with
paplay, recorded through PortAudio -> ALSA -> pulse by SoundDeviceSource and the Recorder.

Checks that what was recorded *is* what was played (aligned cross-correlation), that
Whisper hears the same words in it as in the file itself, that the device is released
on every way out (seen from the server: no record stream left), and that hundreds of
open/close cycles leak no stream, thread or file descriptor.
"""

from __future__ import annotations

import asyncio
import gc
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from redis.asyncio import Redis

from tests.audio.conftest import published
from tests.audio.pulse import PulseServer
from tests.audio.signals import correlation
from tests.support.speech import duration_s, read_wav, word_error_rate
from tests.support.tools import needs_tools
from whisp_audio.app import create_app
from whisp_audio.settings import AudioSettings
from whisp_recorder import Recorder, RecorderState, RecorderStatus
from whisp_recorder.devices import list_input_devices, refresh_portaudio
from whisp_recorder.sounddevice_source import SoundDeviceSource, open_stream_count
from whisp_shared.audio import decode_audio
from whisp_shared.bus import EventBus
from whisp_shared.config import BusSettings

pytestmark = needs_tools("pulseaudio", "paplay", "pactl", why="a private PulseAudio server")

CAPTURE_LATENCY_S = 0.6  # measured ~0.3 s from paplay's end to the samples; wait double


@pytest.fixture(scope="module")
def pulse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PulseServer]:
    """A private PulseAudio for this module; PortAudio re-initialised to see it (and again
    afterwards, so later tests see the machine as it was)."""
    server = PulseServer(tmp_path_factory.mktemp("pulse")).start()
    previous = os.environ.get("PULSE_SERVER")
    os.environ["PULSE_SERVER"] = server.server
    try:  # the server is stopped on every way out, a failed refresh too
        assert refresh_portaudio()
        yield server
    finally:
        server.stop()
        if previous is None:
            os.environ.pop("PULSE_SERVER", None)
        else:
            os.environ["PULSE_SERVER"] = previous
        refresh_portaudio()


def record_while_playing(pulse: PulseServer, wav: Path, lead_s: float = 0.3):
    recorder = Recorder(SoundDeviceSource("pulse"))
    recorder.arm()
    recorder.start()
    time.sleep(lead_s)
    pulse.play(wav)
    time.sleep(CAPTURE_LATENCY_S)
    recording = recorder.stop()
    recorder.finish()
    return recording


def test_pulse_devices_are_listed(pulse: PulseServer) -> None:
    names = [d.name for d in list_input_devices()]
    assert "pulse" in names


def test_capture_matches_what_was_played(pulse: PulseServer, speech, tiny_engine) -> None:
    from whisp_transcription.engines.base import Clip, TranscribeOptions

    # tiny.en (int8, greedy) is fragile: a few hundred ms more silence around the same
    # samples can change a word (CI heard "And the message" for "Send a message" in a
    # capture with corr 1.0000, the lead silence being the only difference). So Whisper
    # hears the captured samples aligned to the file, where only the capture can differ.
    utterance, wav = speech["late-for-dinner"]
    reference, _ = read_wav(wav)
    recording = record_while_playing(pulse, wav)
    samples = recording.samples

    corr, lag = correlation(samples, reference)
    print(f"\ncapture: corr={corr:.4f} lag={lag / 16:.1f} ms duration={recording.duration_s:.2f}s")
    assert corr > 0.9
    assert lag >= 0 and lag + len(reference) <= len(samples), "the whole clip was captured"
    expected = duration_s(wav) + 0.3 + CAPTURE_LATENCY_S
    assert recording.duration_s == pytest.approx(expected, abs=0.6)

    def transcribe(audio: np.ndarray) -> str:
        clip = Clip(audio.astype(np.float32), b"", "audio/wav")
        result = asyncio.run(tiny_engine.transcribe(clip, TranscribeOptions()))
        return result.text

    captured = samples[lag : lag + len(reference)]
    heard, from_file = transcribe(captured), transcribe(reference)
    wer, wer_file = (
        word_error_rate(utterance.text, heard),
        word_error_rate(utterance.text, from_file),
    )
    print(f"capture WER={wer:.3f} file WER={wer_file:.3f}: {heard!r}")
    # At most one word more than the model gets wrong on the file itself (s16 -> float32
    # scaling is the only difference left after a 0.99+ match).
    words = len(utterance.text.split())
    assert wer <= wer_file + 1 / words


def _wait(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


@pytest.mark.parametrize("way_out", ["stop", "cancel_armed", "cancel_recording", "close"])
def test_the_device_is_released(pulse: PulseServer, way_out: str) -> None:
    recorder = Recorder(SoundDeviceSource("pulse"))
    recorder.arm()
    if way_out != "cancel_armed":
        recorder.start()
        time.sleep(0.2)
    _wait(lambda: pulse.record_streams() == 1)
    {
        "stop": recorder.stop,
        "cancel_armed": recorder.cancel,
        "cancel_recording": recorder.cancel,
        "close": recorder.close,
    }[way_out]()
    assert open_stream_count() == 0
    _wait(lambda: pulse.record_streams() == 0)


def test_many_recordings_leak_nothing(pulse: PulseServer) -> None:
    source = SoundDeviceSource("pulse")
    recorder = Recorder(source)
    recorder.arm()  # warm up PortAudio's and libpulse's one-time threads
    recorder.cancel()
    gc.collect()
    threads, fds = threading.active_count(), len(os.listdir("/proc/self/fd"))
    started = time.perf_counter()
    for i in range(200):
        recorder.arm()
        if i % 2:
            recorder.cancel()
        else:
            recorder.start()
            recorder.stop()
            recorder.finish()
    per_cycle_ms = (time.perf_counter() - started) / 200 * 1000
    gc.collect()
    print(f"\n200 open/close cycles: {per_cycle_ms:.1f} ms each")
    assert open_stream_count() == 0
    _wait(lambda: pulse.record_streams() == 0)
    _wait(lambda: threading.active_count() <= threads)
    assert len(os.listdir("/proc/self/fd")) <= fds


async def test_recording_over_http_from_the_real_device(
    pulse: PulseServer, bus_settings: BusSettings, redis: Redis, tmp_path: Path, speech
) -> None:
    """The device routes with the default (PortAudio) source: start, play, stop, publish."""
    _utterance, wav = speech["late-for-dinner"]
    settings = AudioSettings(data_dir=tmp_path / "data", public_url="http://audio.test")
    app = create_app(settings, EventBus(bus_settings))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://audio.test"
        ) as client,
    ):
        listing = (await client.get("/devices")).json()
        assert "pulse" in [d["name"] for d in listing["devices"]]
        started = await client.post("/devices/pulse/recording", headers={"X-Whisp-User": "dev"})
        assert started.status_code == 201, started.text
        await asyncio.sleep(0.3)
        await asyncio.to_thread(pulse.play, wav)
        await asyncio.sleep(CAPTURE_LATENCY_S)
        stopped = await client.post(
            "/devices/pulse/recording/stop", headers={"X-Whisp-User": "dev"}
        )
        assert stopped.status_code == 201, stopped.text
        [event] = await published(redis)
        assert event.user_id == "dev" and event.recording_id == stopped.json()["recording_id"]
        audio = await client.get(f"/audio/{event.recording_id}")
    corr, _lag = correlation(decode_audio(audio.content), read_wav(wav)[0])
    assert corr > 0.9
    assert pulse.record_streams() == 0


def test_a_dying_audio_server_ends_the_recording_and_frees_the_device(
    pulse: PulseServer,
) -> None:
    """The real error path: PulseAudio goes away mid-recording. (Runs last: it restarts
    the module's server.)"""
    recorder = Recorder(SoundDeviceSource("pulse"))
    seen: list[RecorderStatus] = []
    recorder.subscribe(seen.append)
    recorder.arm()
    recorder.start()
    time.sleep(0.3)
    try:
        pulse.stop()
        _wait(lambda: recorder.state is RecorderState.IDLE, timeout=10)
        assert open_stream_count() == 0
        errors = [s for s in seen if s.reason == "error"]
        assert len(errors) == 1 and "stopped by itself" in (errors[0].error or "")
    finally:
        recorder.close()
        pulse.start()
