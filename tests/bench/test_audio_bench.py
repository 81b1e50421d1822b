"""Benchmark of the audio service's two latency-critical hops, each beside its raw floor.

What is measured (one process; the audio app on a real uvicorn server thread; the
session's private redis-server; a private PulseAudio with a null sink + virtual source):

- mic path, "key press -> first captured frame": `Recorder(SoundDeviceSource("pulse"))`
  driven from IDLE (arm + start: the device is opened on the press) and from ARMED (start
  only: the device was opened beforehand), timed from the call to the moment the first
  block the recorder *keeps* enters the PortAudio callback. Raw floors in the same run:
  a bare `sounddevice.InputStream(device="pulse")` open + start -> its first callback,
  and on an already running bare stream, "now" -> its next callback (the block period);
- upload path, "release -> RecordingCompleted readable": POST /recordings of a 3 s WAV
  over real HTTP, timed from sending the request to the entry being returned by an XREAD
  BLOCK on whisp:recordings-priority (a reader thread blocked from a position taken before the
  upload), and to the HTTP answer. Floors: a bare XADD of the same entry's fields to
  another stream read by the same reader (the engine), and GET /healthz (the web stack);
- device path, POST /devices/pulse/recording/stop -> RecordingCompleted readable (and the
  start request's round trip) after ~0.25 s of recording from the virtual source.

Figures go to tests/bench/results/audio.json (medians, p90, p99, raw samples) and a CDF
plot in audio.png. Nothing asserts speed; only that every sample completed and that no
stream, device or server is left behind. Without PulseAudio the mic and device parts skip
with the reason; the upload part still runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import queue
import random
import statistics
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import httpx
import numpy as np
import pytest
import redis as redis_sync

from tests.audio.pulse import PulseServer, available
from tests.bench.stats import latency_stats
from tests.gateway.server import serving
from tests.support.speech import write_wav
from tests.support.tools import unavailable
from whisp_audio.app import create_app
from whisp_audio.settings import AudioSettings
from whisp_cli.redis_server import RedisServer
from whisp_recorder import Recorder, RecorderState
from whisp_recorder.devices import refresh_portaudio
from whisp_recorder.sounddevice_source import SoundDeviceSource, open_stream_count
from whisp_recorder.source import ErrorCallback, FrameCallback, Frames
from whisp_shared.bus import EventBus
from whisp_shared.codec import decode_entry
from whisp_shared.config import BusSettings
from whisp_shared.events import RecordingCompleted
from whisp_shared.streams import PRIORITY_RECORDINGS

RESULTS_DIR = Path(__file__).parent / "results"
JSON_PATH = RESULTS_DIR / "audio.json"
PNG_PATH = RESULTS_DIR / "audio.png"

N_MIC = 30
N_UPLOAD = 30
N_DEVICE = 15
WARMUP = 3
RATE = 16_000
UPLOAD_SECONDS = 3.0
DEVICE_RECORD_S = 0.25
WAIT_S = 5.0
"""Longest wait for any single sample (first frame, event, response): a hard timeout."""
USER = "bench"
RAW_STREAM = "bench:audio:raw"

Entries = list[tuple[bytes, dict[bytes, bytes]]]


# --- small measuring tools -----------------------------------------------------------------


@dataclass
class Series:
    """Named latency samples (seconds) of one path; warm-up samples are not kept."""

    samples: dict[str, list[float]] = field(default_factory=dict)

    def add(self, name: str, seconds: float) -> None:
        self.samples.setdefault(name, []).append(seconds)

    def figures(self) -> dict[str, dict[str, float]]:
        return {name: latency_stats(values) for name, values in self.samples.items()}


def ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b else float("nan")


# --- the mic path --------------------------------------------------------------------------


class FirstKeptBlock:
    """An AudioSource wrapping a SoundDeviceSource: stamps when each block enters the
    callback, and sets `kept` at the entry time of the first block the recorder keeps
    after start(), i.e. the first frame of the recording."""

    def __init__(self, inner: SoundDeviceSource) -> None:
        self.inner = inner
        self.recorder: Recorder | None = None
        self.blocks = 0
        self.block_frames: list[int] = []
        self.kept: float | None = None
        self.kept_event = threading.Event()
        self.flowing = threading.Event()

    @property
    def sample_rate(self) -> int:
        return self.inner.sample_rate

    @property
    def channels(self) -> int:
        return self.inner.channels

    @property
    def is_open(self) -> bool:
        return self.inner.is_open

    def reset(self) -> None:
        self.kept = None
        self.kept_event.clear()
        self.flowing.clear()

    def open(self, on_frames: FrameCallback, on_error: ErrorCallback | None = None) -> None:
        recorder = self.recorder
        assert recorder is not None

        def timed(frames: Frames) -> None:
            entered = time.perf_counter()
            on_frames(frames)
            self.blocks += 1
            if len(self.block_frames) < 200:
                self.block_frames.append(len(frames))
            self.flowing.set()
            # Private, on purpose: the recorder exposes no "first frame kept" signal. start()
            # zeroes the count while moving to RECORDING (under the frames lock), so both
            # true means this very block was kept; a block that arrived while still ARMED,
            # or a count left from the last recording, never qualifies.
            if (
                self.kept is None
                and recorder.state is RecorderState.RECORDING
                and recorder._captured > 0
            ):
                self.kept = entered
                self.kept_event.set()

        self.inner.open(timed, on_error)

    def close(self) -> None:
        self.inner.close()


def press_from_idle(recorder: Recorder, probe: FirstKeptBlock) -> tuple[float, float]:
    """arm + start from IDLE -> first kept block; also how long the two calls took."""
    probe.reset()
    started = time.perf_counter()
    recorder.arm()
    recorder.start()
    returned = time.perf_counter()
    assert probe.kept_event.wait(WAIT_S), "no frame within the timeout (from IDLE)"
    assert probe.kept is not None
    recorder.stop()
    recorder.finish()
    return probe.kept - started, returned - started


def press_from_armed(recorder: Recorder, probe: FirstKeptBlock) -> tuple[float, float]:
    """start from ARMED (device open and delivering) -> first kept block."""
    probe.reset()
    recorder.arm()
    try:
        assert probe.flowing.wait(WAIT_S), "the armed stream delivered nothing"
        time.sleep(random.uniform(0.02, 0.08))  # land anywhere in the block period
        started = time.perf_counter()
        recorder.start()
        returned = time.perf_counter()
        assert probe.kept_event.wait(WAIT_S), "no frame within the timeout (from ARMED)"
        assert probe.kept is not None
        recorder.stop()
        recorder.finish()
    finally:
        if recorder.state is not RecorderState.IDLE:
            recorder.close()
    return probe.kept - started, returned - started


def raw_open_to_first_callback() -> float:
    import sounddevice as sd  # type: ignore[import-untyped]

    first: list[float] = []
    got = threading.Event()

    def callback(_indata: Any, _frames: int, _time: Any, _status: Any) -> None:
        if not first:
            first.append(time.perf_counter())
            got.set()

    started = time.perf_counter()
    stream = sd.InputStream(
        device="pulse", samplerate=RATE, channels=1, dtype="float32", callback=callback
    )
    try:
        stream.start()
        assert got.wait(WAIT_S), "the bare stream delivered nothing"
    finally:
        stream.abort(ignore_errors=True)
        stream.close(ignore_errors=True)
    return first[0] - started


def raw_running_next_callback(n: int) -> tuple[list[float], int]:
    """On one running bare stream: from "now" to the next callback, `n` times; and its
    block size."""
    import sounddevice as sd

    armed = threading.Event()
    got = threading.Event()
    stamp: list[float] = []
    frames_seen: list[int] = []

    def callback(_indata: Any, frames: int, _time: Any, _status: Any) -> None:
        frames_seen.append(frames)
        if armed.is_set() and not got.is_set():
            stamp.append(time.perf_counter())
            got.set()

    out: list[float] = []
    stream = sd.InputStream(
        device="pulse", samplerate=RATE, channels=1, dtype="float32", callback=callback
    )
    try:
        stream.start()
        time.sleep(0.1)
        for _ in range(n):
            time.sleep(random.uniform(0.02, 0.08))
            stamp.clear()
            got.clear()
            started = time.perf_counter()
            armed.set()
            assert got.wait(WAIT_S), "the running bare stream stopped delivering"
            armed.clear()
            out.append(stamp[0] - started)
    finally:
        stream.abort(ignore_errors=True)
        stream.close(ignore_errors=True)
    return out, int(statistics.median(frames_seen)) if frames_seen else 0


# --- the service side ----------------------------------------------------------------------


class StreamReader:
    """A thread blocked in XREAD on `streams` from the positions taken at start; stamps
    each entry when XREAD returns it and queues (stamp, stream, id, fields)."""

    def __init__(self, url: str, streams: list[str]) -> None:
        self.client = redis_sync.Redis.from_url(url, socket_timeout=5)
        positions: dict[str, bytes] = {}
        for stream in streams:
            last = cast(Entries, self.client.xrevrange(stream, count=1))
            positions[stream] = last[0][0] if last else b"0-0"
        self.positions = positions
        self.queue: queue.Queue[tuple[float, str, bytes, dict[bytes, bytes]]] = queue.Queue()
        self.stopping = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="bench-xread", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while not self.stopping.is_set():
                response = self.client.xread(cast(Any, self.positions), block=200)
                now = time.perf_counter()
                for name, entries in cast(list[tuple[bytes, Entries]], response or []):
                    stream = name.decode()
                    for entry_id, fields in entries:
                        self.positions[stream] = entry_id
                        self.queue.put((now, stream, entry_id, fields))
        except BaseException as exc:  # surfaced by `next`
            self.error = exc

    def next(self, stream: str) -> tuple[float, dict[bytes, bytes]]:
        """The next entry read from `stream` (others are dropped)."""
        deadline = time.monotonic() + WAIT_S
        while True:
            remaining = deadline - time.monotonic()
            if self.error is not None:
                raise AssertionError(f"the stream reader failed: {self.error!r}")
            assert remaining > 0, f"nothing read from {stream} in {WAIT_S} s"
            try:
                stamp, name, _id, fields = self.queue.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                continue
            if name == stream:
                return stamp, fields

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=5)
        self.client.close()


@dataclass
class Service:
    url: str
    http: httpx.Client
    reader: StreamReader
    redis: redis_sync.Redis


@pytest.fixture(scope="module")
def service(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    """The audio app on a real uvicorn server thread, a keep-alive HTTP client, and a
    reader blocked on whisp:recordings-priority and the raw floor's stream."""
    data_dir = tmp_path_factory.mktemp("audio-bench") / "data"
    settings = AudioSettings(data_dir=data_dir, public_url="http://audio.bench")
    bus = EventBus(BusSettings(redis_url=redis_server.url))
    app = create_app(settings, bus)
    client = redis_sync.Redis.from_url(redis_server.url, socket_timeout=5)
    with serving(app) as url:
        reader = StreamReader(redis_server.url, [PRIORITY_RECORDINGS, RAW_STREAM])
        http = httpx.Client(base_url=url, timeout=WAIT_S, headers={"X-Whisp-User": USER})
        try:
            yield Service(url, http, reader, client)
        finally:
            http.close()
            reader.close()
            client.delete(RAW_STREAM)
            client.close()


def expect_recording(fields: dict[bytes, bytes], recording_id: str) -> RecordingCompleted:
    event = decode_entry(fields)
    assert isinstance(event, RecordingCompleted), event
    assert event.recording_id == recording_id and event.user_id == USER
    return event


@pytest.fixture(scope="module")
def upload_wav(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """3 s of a gliding, amplitude-modulated tone with a little noise (16 kHz mono s16)."""
    t = np.arange(int(UPLOAD_SECONDS * RATE)) / RATE
    rng = np.random.default_rng(4)
    tone = np.sin(2 * np.pi * (220 + 60 * t) * t) * (0.3 + 0.2 * np.sin(2 * np.pi * 3 * t))
    samples = tone + 0.01 * rng.standard_normal(len(t))
    return write_wav(tmp_path_factory.mktemp("upload") / "clip.wav", samples).read_bytes()


# --- PulseAudio ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pulse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PulseServer]:
    """A private PulseAudio as in tests/audio/test_capture_pulse.py; skips with the reason
    when it cannot run. PortAudio re-initialised to see it, and again afterwards."""
    reason = available()
    if reason is not None:
        unavailable(f"no PulseAudio for the mic path: {reason}")
    server = PulseServer(tmp_path_factory.mktemp("pulse"))
    try:
        server.start()
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        unavailable(f"PulseAudio did not start: {str(exc)[:300]}")
    previous = os.environ.get("PULSE_SERVER")
    os.environ["PULSE_SERVER"] = server.server
    try:
        assert refresh_portaudio(), "a PortAudio stream is open: cannot see PulseAudio"
        yield server
    finally:
        server.stop()
        if previous is None:
            os.environ.pop("PULSE_SERVER", None)
        else:
            os.environ["PULSE_SERVER"] = previous
        refresh_portaudio()


def wait_until(predicate: Callable[[], bool], timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


# --- report: written once the module's tests ran -------------------------------------------


def machine_info() -> dict[str, Any]:
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    from importlib.metadata import version

    return {
        "cpu_count": os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "git_head": head or None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "sounddevice": version("sounddevice"),
        "uvicorn": version("uvicorn"),
        "redis_py": version("redis"),
    }


def add_ratios(results: dict[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    pairs = {
        "mic": [
            ("press_from_idle", "raw_open_to_first_callback"),
            ("press_from_armed", "raw_running_next_callback"),
        ],
        "upload": [
            ("upload_to_event_readable", "raw_xadd_to_xread"),
            ("upload_response", "healthz_round_trip"),
        ],
        "device": [("stop_to_event_readable", "raw_xadd_to_xread")],
    }
    for path, names in pairs.items():
        figures = results.get(path, {}).get("latency", {})
        floors = results.get("upload", {}).get("latency", {}) if path == "device" else figures
        for ours, floor in names:
            if ours in figures and floor in floors:
                for stat in ("median_ms", "p99_ms"):
                    out[f"{path}_{ours}_{stat.removesuffix('_ms')}_over_{floor}"] = ratio(
                        figures[ours][stat], floors[floor][stat]
                    )
    return out


def plot(samples: dict[str, dict[str, list[float]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    titles = {
        "mic": "mic: press → first captured frame",
        "upload": "upload: request → RecordingCompleted readable",
        "device": "device: stop request → RecordingCompleted readable",
    }
    paths = [p for p in titles if samples.get(p)]
    fig, axes = plt.subplots(1, len(paths), figsize=(6.5 * len(paths), 5), squeeze=False)
    for ax, name in zip(axes[0], paths, strict=True):
        for series, values in samples[name].items():
            ms = sorted(v * 1000 for v in values)
            ys = [(i + 1) / len(ms) for i in range(len(ms))]
            raw = series.startswith(("raw", "healthz"))
            ax.step(ms, ys, where="post", linestyle="--" if raw else "-", label=series)
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("latency (ms, log scale)")
        ax.set_ylabel("fraction of samples")
        ax.set_title(titles[name])
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("WhisPTT audio service latency (dashed: raw floors)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def summary_lines(data: dict[str, Any]) -> list[str]:
    lines = ["", "=== audio benchmark ==="]
    m = data["machine"]
    lines.append(f"{m['cpu_count']} CPUs, python {m['python']}, load {m['load_average_at_start']}")
    for path, result in data["results"].items():
        for name, fig in result.get("latency", {}).items():
            lines.append(
                f"{path:<7} {name:<28} median {fig['median_ms']:8.2f} ms"
                f"  p99 {fig['p99_ms']:8.2f} ms  (n={fig['n']})"
            )
    for path, reason in data["skipped"].items():
        lines.append(f"{path}: skipped ({reason})")
    for name, value in data["ratios"].items():
        lines.append(f"  {name}: {value}")
    lines.append(f"written: {JSON_PATH} and {PNG_PATH.name}")
    return lines


@pytest.fixture(scope="module", autouse=True)
def quiet_logs() -> Iterator[None]:
    """structlog's default prints every info/debug line (one per recording, one per stream
    opened) to stdout; that is logging cost, not audio cost, and floods -s output."""
    import logging

    import structlog

    previous = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    try:
        yield
    finally:
        structlog.configure(**previous)


@pytest.fixture(scope="module")
def report() -> Iterator[dict[str, Any]]:
    data: dict[str, Any] = {
        "machine": machine_info(),
        "parameters": {
            "n_mic": N_MIC,
            "n_upload": N_UPLOAD,
            "n_device": N_DEVICE,
            "warmup_discarded": WARMUP,
            "upload_clip": f"{UPLOAD_SECONDS:g} s WAV, 16 kHz mono s16",
            "device_record_s": DEVICE_RECORD_S,
            "mic_source": 'SoundDeviceSource("pulse") (PortAudio -> ALSA -> pulse plugin) on '
            "a private PulseAudio null sink + virtual source, 16 kHz mono float32",
            "first_frame": "entry into the PortAudio callback of the first block the "
            "recorder keeps",
            "event_readable": "XREAD BLOCK on whisp:recordings-priority in a reader thread, from a "
            "position taken before the request; stamped when XREAD returns",
            "logging": "structlog below WARNING filtered while measuring",
            "http": "httpx.Client keep-alive to uvicorn on 127.0.0.1, server in a thread of "
            "this process",
        },
        "results": {},
        "skipped": {},
        "samples_ms": {},
    }
    started = time.perf_counter()
    yield data
    data["elapsed_s"] = round(time.perf_counter() - started, 2)
    data["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    data["ratios"] = add_ratios(data["results"])
    samples = data.pop("samples_ms")
    data["latency_samples_ms"] = {
        path: {name: [round(v * 1000, 3) for v in values] for name, values in series.items()}
        for path, series in samples.items()
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    if any(samples.values()):
        plot(samples, PNG_PATH)
    JSON_PATH.write_text(json.dumps(data, indent=2) + "\n")
    print("\n".join(summary_lines(data)))


def record(report: dict[str, Any], path: str, series: Series, **extra: Any) -> None:
    report["results"][path] = {"latency": series.figures(), **extra}
    report["samples_ms"][path] = series.samples


def skip_part(report: dict[str, Any], path: str, request: pytest.FixtureRequest) -> PulseServer:
    """The pulse fixture, or a skip noted in the report."""
    try:
        return cast(PulseServer, request.getfixturevalue("pulse"))
    except pytest.skip.Exception as exc:
        report["skipped"][path] = str(exc.msg)
        raise


# --- the benchmarks ------------------------------------------------------------------------


@pytest.mark.bench
@pytest.mark.timeout(40)
def test_mic_press_to_first_frame(report: dict[str, Any], request: pytest.FixtureRequest) -> None:
    pulse = skip_part(report, "mic", request)
    probe = FirstKeptBlock(SoundDeviceSource("pulse"))
    recorder = Recorder(probe, max_duration_s=30)
    probe.recorder = recorder
    series = Series()
    calls = Series()
    try:
        for i in range(WARMUP + N_MIC):
            kinds: list[str] = ["idle", "armed", "raw"]
            random.shuffle(kinds)  # no kind always follows another
            for kind in kinds:
                if kind == "idle":
                    first, call = press_from_idle(recorder, probe)
                    name, call_name = "press_from_idle", "arm_plus_start_calls"
                elif kind == "armed":
                    first, call = press_from_armed(recorder, probe)
                    name, call_name = "press_from_armed", "start_call"
                else:
                    first, call = raw_open_to_first_callback(), 0.0
                    name, call_name = "raw_open_to_first_callback", ""
                if i >= WARMUP:
                    series.add(name, first)
                    if call_name:
                        calls.add(call_name, call)
        running, block = raw_running_next_callback(N_MIC)
        for value in running:
            series.add("raw_running_next_callback", value)
    finally:
        recorder.close()
    assert open_stream_count() == 0
    wait_until(lambda: pulse.record_streams() == 0)
    record(
        report,
        "mic",
        series,
        call_durations=calls.figures(),
        recorder_block_frames=int(statistics.median(probe.block_frames)),
        raw_block_frames=block,
    )


@pytest.mark.bench
@pytest.mark.timeout(40)
def test_upload_to_recording_completed(
    report: dict[str, Any], service: Service, upload_wav: bytes
) -> None:
    series = Series()
    files = {"file": ("clip.wav", upload_wav, "audio/wav")}
    reader, http = service.reader, service.http
    for i in range(WARMUP + N_UPLOAD):
        # the upload: request sent -> answer, and -> the entry read off whisp:recordings-priority
        started = time.perf_counter()
        response = http.post("/recordings", files=files, data={"language": "en"})
        answered = time.perf_counter()
        assert response.status_code == 201, response.text
        read_at, fields = reader.next(PRIORITY_RECORDINGS)
        event = expect_recording(fields, response.json()["recording_id"])
        assert event.duration_s == pytest.approx(UPLOAD_SECONDS, abs=0.01)

        # the engine floor: the same entry's fields, XADDed and read by the same reader
        xadd_started = time.perf_counter()
        service.redis.xadd(RAW_STREAM, cast(Any, fields))
        raw_read_at, _ = reader.next(RAW_STREAM)

        # the web floor
        health_started = time.perf_counter()
        assert http.get("/healthz").status_code == 200
        health_done = time.perf_counter()
        if i >= WARMUP:
            series.add("upload_to_event_readable", read_at - started)
            series.add("upload_response", answered - started)
            series.add("raw_xadd_to_xread", raw_read_at - xadd_started)
            series.add("healthz_round_trip", health_done - health_started)
    record(report, "upload", series, upload_bytes=len(upload_wav))


@pytest.mark.bench
@pytest.mark.timeout(40)
def test_device_stop_to_recording_completed(
    report: dict[str, Any], service: Service, request: pytest.FixtureRequest
) -> None:
    skip_part(report, "device", request)
    series = Series()
    reader, http = service.reader, service.http
    try:
        for i in range(WARMUP + N_DEVICE):
            started = time.perf_counter()
            response = http.post("/devices/pulse/recording")
            answered = time.perf_counter()
            assert response.status_code == 201, response.text
            time.sleep(DEVICE_RECORD_S)
            stop_started = time.perf_counter()
            stopped = http.post("/devices/pulse/recording/stop")
            stop_answered = time.perf_counter()
            assert stopped.status_code == 201, stopped.text
            read_at, fields = reader.next(PRIORITY_RECORDINGS)
            expect_recording(fields, stopped.json()["recording_id"])
            if i >= WARMUP:
                series.add("start_response", answered - started)
                series.add("stop_to_event_readable", read_at - stop_started)
                series.add("stop_response", stop_answered - stop_started)
    finally:
        with contextlib.suppress(httpx.HTTPError):  # a no-op unless a step failed
            http.post("/devices/pulse/recording/cancel")
    wait_until(lambda: open_stream_count() == 0)
    record(report, "device", series)
