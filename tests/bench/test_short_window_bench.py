"""Benchmark of the short-window decode (issue 11) against `transcribe()`, the stack and the
browser, per clip length, in one run.

Clips: `_short_window.CORPUS`, espeak-ng dictation in four buckets (about 2, 5, 10, 20 s),
three sentences per bucket, each in its own voice. Engine everywhere: tiny.en, int8, cpu,
cpu_threads=1 (the defaults).

Measures, per clip:
- transcribe: `FasterWhisperEngine(short_window disabled).transcribe_sync` on the decoded
  clip (RMS gate, VAD, faster-whisper's own `WhisperModel.transcribe` with our guards).
- bare_decode: `engine._short.decode(Speech.find(samples, True).samples, "en", None, False)`
  on a default engine; only the decode is timed (the VAD's time is recorded beside it).
- engine_short: the default engine's `transcribe_sync` (RMS + VAD + short window, or the
  full path when a guard trips), the path counted from this process's metrics.
- stack: `whisp up --workers 1` (every service as its own process; the local LLM is
  disabled, no agent is asked), the `openai` SDK's `audio.transcriptions.create(...,
  response_format="text")`, from just before the call to the text returned. Each sample is
  split on one clock with the events on the stack's Redis: upload → RecordingCompleted
  published (gateway + audio service: HTTP, decode, WAV store) → TranscriptReady published
  (bus delivery, worker: fetch + decode_audio + engine, `processing_s`, and bookkeeping) →
  text at the client (gateway wake-up, response, SDK).
- browser: Debian's Chromium (Playwright, fake microphone playing the clip's WAV), the
  page's button held for the clip plus HOLD_EXTRA_S; from `pointerup` to the transcript's
  text on the page (both stamped in the page: a capture listener and a MutationObserver),
  one clip per bucket, BROWSER_REPS times, a new context each (the file plays once per
  capture stream).

The first clip of each bucket goes through every measure once first (warm-up); then REPS
rounds over all clips, the raw and stack measures of a clip back to back in an order that
rotates, so raw and stack samples see the same load. Every sample records the CPU other programs
took meanwhile (`TreeCpuWatch`: machine busy time minus this process's whole tree); one
above OTHERS_LIMIT_CORES is taken again (bounded). Also recorded: WER per clip and corpus
for each path, the worker's decode-path counters, its VmRSS/VmHWM after the run.

Targets (issue 11) are recorded beside the ratios; asserted are only generous CEILINGS,
and the accuracy bound as it is. Results: tests/bench/results/short_window.{json,png}.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import numpy as np
import pytest
import redis as redis_sync
from openai import OpenAI
from prometheus_client import REGISTRY

from tests.bench._procs import vm_status_mb
from tests.bench._short_window import (
    BUCKET_RANGES_S,
    CORPUS,
    MEASURES,
    BenchClip,
    Interference,
    Sample,
    Samples,
    TreeCpuWatch,
    accuracy,
    breakdown,
    bucket_results,
    decode_paths,
    median,
    new_paths,
    plot,
    ratio,
    record,
    scrape,
    summary,
)
from tests.e2e.browser_support import NO_WEBSOCKET
from tests.support.processes import WhispUp
from tests.support.speech import duration_s, speech_corpus, word_error_rate, write_wav
from tests.support.tools import require_tool
from whisp_shared.audio import decode_audio
from whisp_shared.codec import decode_entry
from whisp_shared.events import Event, RecordingCompleted, TranscriptReady
from whisp_shared.streams import PRIORITY_RECORDINGS, TRANSCRIPTS
from whisp_transcription.engines.base import Clip, TranscribeOptions
from whisp_transcription.engines.faster_whisper_engine import FasterWhisperEngine
from whisp_transcription.engines.short_window import ShortResult, ShortWindowDecoder
from whisp_transcription.engines.speech import Speech
from whisp_transcription.settings import FasterWhisperSettings, ShortWindowSettings

if TYPE_CHECKING:
    from playwright.sync_api import Browser

pytestmark = [pytest.mark.bench, pytest.mark.timeout(900)]

RESULTS_DIR = Path(__file__).parent / "results"
JSON_PATH = RESULTS_DIR / "short_window.json"
PNG_PATH = RESULTS_DIR / "short_window.png"

REPS = 3
BROWSER_REPS = 3
LEAD_S = 0.5  # silence before the speech: the fake device starts a little before recording
HOLD_EXTRA_S = 0.7
OTHERS_LIMIT_CORES = 0.3
TRIES = 2
RETRY_BUDGET_S = 20.0
SHORT_BUCKETS = ("2s", "5s", "10s")
"""The buckets "clips up to 10 s" covers."""

TARGETS = {
    "stack_over_transcribe_up_to_10s_max": 0.45,
    "stack_over_bare_decode_max": 1.3,
    "worker_rss_mb_max": 350.0,
    "short_corpus_wer_minus_full_max": 0.02,
}
CEILINGS = {
    "stack_over_transcribe_up_to_10s_max": 0.8,
    "stack_over_bare_decode_max": 4.0,  # a fixed ~50-100 ms over an ~80-ms 2-s decode
    "worker_rss_mb_max": 450.0,
    "short_corpus_wer_minus_full_max": 0.02,
}
STACK_ENV = {"WHISP_WEB__RATE_LIMIT": "1000/minute", "WHISP_AGENTS__LOCAL_LLM__ENABLED": "false"}
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
]  # fmt: skip


# --- fixtures --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> list[BenchClip]:
    utterances = [u for bucket in CORPUS.values() for u in bucket]
    made = dict(speech_corpus(tmp_path_factory.mktemp("speech"), utterances))
    out = []
    for bucket, members in CORPUS.items():
        for utt in members:
            speech = Speech.find(decode_audio(made[utt].read_bytes()), True)
            clip = BenchClip(bucket, utt, made[utt], duration_s(made[utt]), speech.duration_s)
            low, high = BUCKET_RANGES_S[bucket]
            assert low <= clip.duration_s <= high, (clip.id, clip.duration_s)
            out.append(clip)
    return out


@dataclass(frozen=True)
class Engines:
    full: FasterWhisperEngine
    short: FasterWhisperEngine

    @property
    def bare(self) -> ShortWindowDecoder:
        decoder = self.short._short  # the decode itself, as the issue asks
        assert decoder is not None
        return decoder


@pytest.fixture(scope="module")
def engines() -> Engines:
    full = FasterWhisperEngine(
        FasterWhisperSettings(short_window=ShortWindowSettings(enabled=False))
    )
    short = FasterWhisperEngine(FasterWhisperSettings())
    full.load()
    short.load()
    return Engines(full, short)


@dataclass
class Stack:
    up: WhispUp
    services: dict[str, dict[str, Any]]
    client: OpenAI
    redis: redis_sync.Redis
    rss_at_ready: dict[str, float]
    paths_seen: dict[str, float] = field(default_factory=dict)

    @property
    def worker(self) -> dict[str, Any]:
        return self.services["transcription-1"]

    def worker_paths(self) -> dict[str, float]:
        return decode_paths(scrape(self.worker["url"]))

    def last(self, stream: str) -> Event:
        entries: list[tuple[bytes, dict[bytes, bytes]]] = self.redis.xrevrange(stream, count=1)  # type: ignore[assignment]
        return decode_entry(entries[0][1])


def whisp_status(data_dir: Path) -> dict[str, dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, "-m", "whisp_cli.main", "status", "--data-dir", str(data_dir), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    return {s["name"]: s for s in json.loads(done.stdout)["services"]}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("short-window-stack")
    up = WhispUp(
        root / "data",
        root / "logs",
        workers=1,
        env=STACK_ENV,
        unset=("REDIS_URL", "DATABASE_URL"),
        stop_timeout=90,
    )
    with up:
        services = whisp_status(root / "data")
        client = OpenAI(base_url=f"{up.url}/v1", api_key="sk-bench", max_retries=0, timeout=120)
        redis = redis_sync.Redis.from_url(services["redis"]["url"])
        rss = vm_status_mb(services["transcription-1"]["pid"])
        try:
            yield Stack(up, services, client, redis, rss)
        finally:
            client.close()
            redis.close()


@pytest.fixture(scope="module")
def report(clips: list[BenchClip]) -> Iterator[dict[str, Any]]:
    data: dict[str, Any] = {
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "faster_whisper": version("faster-whisper"),
            "ctranslate2": version("ctranslate2"),
            "openai": version("openai"),
            "playwright": version("playwright"),
            "load_average_at_start": [round(v, 2) for v in os.getloadavg()],
        },
        "parameters": {
            "engine_settings": FasterWhisperSettings().model_dump(
                mode="json", exclude={"model_cache_dir"}
            ),
            "stack": "whisp up --workers 1",
            "stack_env": STACK_ENV,
            "repetitions": REPS,
            "warmup": "first clip of each bucket through every measure once",
            "browser_repetitions": BROWSER_REPS,
            "browser_hold": f"clip (with {LEAD_S} s lead) + {HOLD_EXTRA_S} s",
            "order": "per clip the four measures back to back, order rotating per clip/round",
            "p95": "inclusive quantiles over the bucket's samples (clips x repetitions)",
        },
        "targets": TARGETS,
        "ceilings_asserted": CEILINGS,
        "clips": [
            {
                "id": c.id,
                "bucket": c.bucket,
                "voice": c.utterance.voice,
                "speed_wpm": c.utterance.speed_wpm,
                "words": len(c.utterance.text.split()),
                "duration_s": round(c.duration_s, 3),
                "speech_s": round(c.speech_s, 3),
            }
            for c in clips
        ],
        "results": {},
        "ratios": {},
        "interference": {},
    }
    started = time.perf_counter()
    yield data
    data["machine"]["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    data["elapsed_s"] = round(time.perf_counter() - started, 1)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    JSON_PATH.write_text(json.dumps(data, indent=2) + "\n")
    if {"latency", "accuracy", "stack_breakdown"} <= data["results"].keys():
        plot(data, PNG_PATH)
    print(f"\n=== short-window benchmark: {JSON_PATH}, {PNG_PATH.name} ===")
    print(json.dumps({"ratios": data["ratios"], "memory": data["results"].get("memory")}))


# --- one sample of each measure --------------------------------------------------------


def local_paths() -> dict[str, float]:
    return decode_paths(
        (s.name, dict(s.labels), float(s.value)) for m in REGISTRY.collect() for s in m.samples
    )


def transcribe_once(engines: Engines, clip: Clip) -> Sample:
    started = time.perf_counter()
    text = engines.full.transcribe_sync(clip, TranscribeOptions()).text
    return {"seconds": time.perf_counter() - started, "text": text}


def bare_once(decoder: ShortWindowDecoder, clip: Clip) -> Sample:
    started = time.perf_counter()
    samples = decode_audio(clip.original)
    decoded = time.perf_counter()
    speech = Speech.find(samples, True)
    found = time.perf_counter()
    out = decoder.decode(speech.samples, "en", None, False)
    done = time.perf_counter()
    return {
        "seconds": done - found,
        "vad_s": found - decoded,
        "decode_audio_s": decoded - started,
        "text": out.text if isinstance(out, ShortResult) else "",
        "outcome": "ok" if isinstance(out, ShortResult) else out.reason,
    }


def engine_short_once(engines: Engines, clip: Clip) -> Sample:
    before = local_paths()
    started = time.perf_counter()
    text = engines.short.transcribe_sync(clip, TranscribeOptions()).text
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "text": text, "path": new_paths(local_paths(), before)}


def stack_once(stack: Stack, path: Path) -> Sample:
    with path.open("rb") as fh:
        wall = time.time()
        started = time.perf_counter()
        text = stack.client.audio.transcriptions.create(
            model="whisper-1", file=fh, response_format="text"
        )
        seconds = time.perf_counter() - started
        returned = time.time()
    recorded, transcribed = stack.last(PRIORITY_RECORDINGS), stack.last(TRANSCRIPTS)
    assert isinstance(recorded, RecordingCompleted), recorded
    assert isinstance(transcribed, TranscriptReady), transcribed
    assert transcribed.recording_id == recorded.recording_id
    paths = stack.worker_paths()
    taken, stack.paths_seen = new_paths(paths, stack.paths_seen), paths
    published, done = recorded.created_at.timestamp(), transcribed.created_at.timestamp()
    return {
        "seconds": seconds,
        "text": text.strip(),
        "path": taken,
        "upload_to_published_s": published - wall,
        "published_to_transcribed_s": done - published,
        "processing_s": transcribed.processing_s,
        "transcribed_to_client_s": returned - done,
    }


# --- test 1: the four measures' raw and stack parts, and accuracy -----------------------


def test_short_window_against_transcribe_and_the_stack(
    clips: list[BenchClip], engines: Engines, stack: Stack, report: dict[str, Any]
) -> None:
    loaded = {
        c.id: Clip(decode_audio(c.path.read_bytes()), c.path.read_bytes(), "audio/wav")
        for c in clips
    }

    def run(measure: str, clip: BenchClip) -> Sample:
        if measure == "stack":
            return stack_once(stack, clip.path)
        runner: dict[str, Callable[[Clip], Sample]] = {
            "transcribe": partial(transcribe_once, engines),
            "bare_decode": partial(bare_once, engines.bare),
            "engine_short": partial(engine_short_once, engines),
        }
        return runner[measure](loaded[clip.id])

    for bucket in CORPUS:  # warm-up: every shape once, raw and through the stack
        first = next(c for c in clips if c.bucket == bucket)
        for measure in MEASURES:
            run(measure, first)
    stack.paths_seen = stack.worker_paths()

    interference = Interference(TreeCpuWatch(), OTHERS_LIMIT_CORES, TRIES, RETRY_BUDGET_S)
    samples: Samples = {c.id: {m: [] for m in MEASURES} for c in clips}
    for rep in range(REPS):
        for n, clip in enumerate(clips):
            turn = (rep + n) % len(MEASURES)
            for measure in MEASURES[turn:] + MEASURES[:turn]:
                value, others = interference.quiet(partial(run, measure, clip))
                samples[clip.id][measure].append(value | {"others_cores": others})

    res = report["results"]
    res["latency"] = {
        b: bucket_results([c for c in clips if c.bucket == b], samples) for b in CORPUS
    }
    res["stack_breakdown"] = {
        b: breakdown([c for c in clips if c.bucket == b], samples) for b in CORPUS
    }
    res["per_clip_median_ms"] = {
        c.id: {m: round(median(s["seconds"] for s in samples[c.id][m]) * 1000, 1) for m in MEASURES}
        | {"audio_s": round(c.duration_s, 2), "speech_s": round(c.speech_s, 2)}
        for c in clips
    }
    res["accuracy"] = acc = accuracy(clips, samples)
    res["samples_ms"] = {
        c.id: {m: [round(s["seconds"] * 1000, 1) for s in samples[c.id][m]] for m in MEASURES}
        for c in clips
    }
    report["interference"]["raw_and_stack"] = interference.as_dict()
    lat, corpus = res["latency"], acc["corpus_wer"]
    for b in CORPUS:
        target = TARGETS["stack_over_transcribe_up_to_10s_max"] if b in SHORT_BUCKETS else None
        record(
            report, f"{b}_stack_over_transcribe", lat[b]["ratios"]["stack_over_transcribe"], target
        )
        record(
            report,
            f"{b}_stack_over_bare_decode",
            lat[b]["ratios"]["stack_over_bare_decode"],
            TARGETS["stack_over_bare_decode_max"],
        )
    record(
        report,
        "short_corpus_wer_minus_full",
        round(corpus["short"] - corpus["full"], 4),
        TARGETS["short_corpus_wer_minus_full_max"],
    )

    for b in SHORT_BUCKETS:
        limit = CEILINGS["stack_over_transcribe_up_to_10s_max"]
        assert lat[b]["ratios"]["stack_over_transcribe"] <= limit, (b, lat[b]["ratios"])
    for b in CORPUS:
        limit = CEILINGS["stack_over_bare_decode_max"]
        assert lat[b]["ratios"]["stack_over_bare_decode"] <= limit, (b, lat[b]["ratios"])
    assert corpus["short"] <= corpus["full"] + CEILINGS["short_corpus_wer_minus_full_max"], corpus


# --- test 2: the browser ---------------------------------------------------------------

OBSERVE_JS = """() => {
  const b = (window.__bench = { released: null, text: null });
  document.addEventListener("pointerup", () => { b.released ??= performance.now(); }, true);
  const check = () => {
    const card = document.querySelector("#results .result");
    if (b.text !== null || !card) return;
    const t = card.querySelector(".transcript");
    const words = /\\w/.test((t && t.textContent) || "");
    if (words || ["empty", "failed"].includes(card.dataset.status)) {
      b.text = performance.now();
      b.status = card.dataset.status;
      b.transcript = (t && t.textContent) || "";
    }
  };
  new MutationObserver(check).observe(document.querySelector("#results"),
    { subtree: true, childList: true, characterData: true, attributes: true });
}"""
UPLOAD_JS = """() => {
  const e = performance.getEntriesByType("resource")
    .find((r) => r.name.includes("/api/recordings"));
  return { ...window.__bench, origin: performance.timeOrigin,
           upload_start: e ? e.startTime : null, upload_end: e ? e.responseEnd : null,
           peak: Number(document.querySelector("#level").dataset.peak || 0) };
}"""


def browser_once(browser: Browser, stack: Stack, wav: Path) -> Sample:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    # The upload path (the short window at work): the page streams by default, which
    # tests/bench/test_streaming_bench.py measures; here no WebSocket ever opens.
    context.add_init_script(NO_WEBSOCKET)
    try:
        page = context.new_page()
        page.goto(f"{stack.up.url}/")
        page.locator("#connection[data-state=live]").wait_for(timeout=30_000)
        page.evaluate(OBSERVE_JS)
        box = page.locator("#ptt").bounding_box()
        assert box is not None
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.mouse.down()
        pressed = time.monotonic()
        page.locator("#ptt[data-state=recording]").wait_for(timeout=10_000)
        left = duration_s(wav) + HOLD_EXTRA_S - (time.monotonic() - pressed)
        page.wait_for_timeout(max(left, 0.0) * 1000)
        page.mouse.up()
        released = time.perf_counter()
        page.wait_for_function("() => window.__bench.text !== null", timeout=60_000)
        python_s = time.perf_counter() - released
        page.wait_for_function(  # the upload's answer may come after the snapshot
            "() => performance.getEntriesByType('resource').some("
            "(r) => r.name.includes('/api/recordings') && r.responseEnd > 0)",
            timeout=15_000,
        )
        stamps: dict[str, Any] = page.evaluate(UPLOAD_JS)
    finally:
        context.close()
    recorded, transcribed = stack.last(PRIORITY_RECORDINGS), stack.last(TRANSCRIPTS)
    assert isinstance(recorded, RecordingCompleted) and isinstance(transcribed, TranscriptReady)
    origin = float(stamps["origin"]) / 1000

    def epoch(key: str) -> float:
        return origin + float(stamps[key]) / 1000

    return {
        "seconds": (stamps["text"] - stamps["released"]) / 1000,
        "python_side_s": python_s,
        "text": stamps.get("transcript", ""),
        "status": stamps.get("status"),
        "peak": stamps["peak"],
        "release_to_upload_start_s": (stamps["upload_start"] - stamps["released"]) / 1000,
        "upload_start_to_published_s": recorded.created_at.timestamp() - epoch("upload_start"),
        "published_to_transcribed_s": (
            transcribed.created_at - recorded.created_at
        ).total_seconds(),
        "processing_s": transcribed.processing_s,
        "transcribed_to_page_s": epoch("text") - transcribed.created_at.timestamp(),
        "upload_request_s": (stamps["upload_end"] - stamps["upload_start"]) / 1000,
        "audio_uri": recorded.audio_uri,
        "audio_duration": transcribed.audio_duration_s,
    }


def replay(engines: Engines, audio_uri: str) -> Sample:
    """The browser's recording (as the worker read it) through the engine in this process,
    after the sample: its speech and what the short path costs on it without the stack."""
    raw = Path(urlparse(audio_uri).path).read_bytes()
    samples = decode_audio(raw)
    before = local_paths()
    started = time.perf_counter()
    engines.short.transcribe_sync(Clip(samples, raw, "audio/wav"), TranscribeOptions())
    return {
        "in_process_engine_short_s": time.perf_counter() - started,
        "in_process_path": new_paths(local_paths(), before),
        "speech_s_after_vad": Speech.find(samples, True).duration_s,
    }


def test_browser_release_to_text(
    clips: list[BenchClip],
    engines: Engines,
    stack: Stack,
    report: dict[str, Any],
    tmp_path: Path,
) -> None:
    chromium = require_tool("chromium", "Debian's chromium, driven by Playwright")
    from playwright.sync_api import sync_playwright

    interference = Interference(TreeCpuWatch(), OTHERS_LIMIT_CORES, 1, 0.0)
    results: dict[str, Any] = {}
    with sync_playwright() as pw:
        for n, bucket in enumerate(CORPUS):
            clip = next(c for c in clips if c.bucket == bucket)
            samples = decode_audio(clip.path.read_bytes())
            lead = np.zeros(round(LEAD_S * 16_000), dtype=np.float32)
            wav = write_wav(tmp_path / f"{clip.id}.wav", np.concatenate([lead, samples]))
            browser = pw.chromium.launch(
                executable_path=chromium,
                headless=True,
                args=[*CHROMIUM_ARGS, f"--use-file-for-fake-audio-capture={wav}%noloop"],
            )
            try:
                if n == 0:
                    browser_once(browser, stack, wav)  # warm-up: the page, the browser
                runs = []
                for _rep in range(BROWSER_REPS):
                    value, others = interference.quiet(partial(browser_once, browser, stack, wav))
                    replayed = replay(engines, value["audio_uri"])
                    runs.append(value | replayed | {"others_cores": others})
            finally:
                browser.close()
            parts = [
                k.removesuffix("_s")
                for k in runs[0]
                if k.endswith("_s") and k != "speech_s_after_vad"
            ]
            results[bucket] = {
                "clip": clip.id,
                "audio_s": round(clip.duration_s, 2),
                "release_to_text": summary([r["seconds"] for r in runs]),
                "parts_median_ms": {
                    f"{k}_ms": round(median(r[f"{k}_s"] for r in runs) * 1000, 1) for k in parts
                },
                "recorded_audio_s": [r["audio_duration"] for r in runs],
                "recorded_speech_s": [round(r["speech_s_after_vad"], 3) for r in runs],
                "in_process_paths": [r["in_process_path"] for r in runs],
                "wer": [round(word_error_rate(clip.utterance.text, r["text"]), 4) for r in runs],
                "texts": [r["text"] for r in runs],
                "statuses": [r["status"] for r in runs],
                "peaks": [r["peak"] for r in runs],
                "others_cores": [r["others_cores"] for r in runs],
            }
    report["interference"]["browser"] = interference.as_dict()
    report["results"]["browser"] = results
    latency = report["results"].get("latency", {})
    for bucket, found in results.items():
        if bucket in latency:
            latency[bucket]["measures"]["browser"] = found["release_to_text"]
            stack_ms = latency[bucket]["measures"]["stack"]["median_ms"]
            found["browser_over_stack"] = ratio(found["release_to_text"]["median_ms"], stack_ms)
    for bucket, found in results.items():
        assert all(p > 0.05 for p in found["peaks"]), (bucket, found["peaks"])  # mic heard it
        assert all(s == "done" for s in found["statuses"]), (bucket, found["statuses"])


# --- test 3: the worker after the run --------------------------------------------------


def test_worker_memory_and_decode_paths(stack: Stack, report: dict[str, Any]) -> None:
    pid = stack.worker["pid"]
    memory = vm_status_mb(pid)
    paths = stack.worker_paths()
    short = sum(v for k, v in paths.items() if k.startswith("short/"))
    fallbacks = {k: v for k, v in paths.items() if k.startswith("full/fallback_")}
    report["results"]["memory"] = {
        "worker": memory | {"pid": pid},
        "worker_at_ready": stack.rss_at_ready,
        "bench_process": vm_status_mb(),
    }
    report["results"]["decode_paths"] = {
        "worker_total": paths,
        "short": short,
        "full": sum(v for k, v in paths.items() if k.startswith("full/")),
        "fallbacks": fallbacks,
    }
    record(report, "worker_VmRSS_mb", memory["VmRSS"], TARGETS["worker_rss_mb_max"])
    record(report, "worker_VmHWM_mb", memory["VmHWM"], TARGETS["worker_rss_mb_max"])
    assert memory["VmHWM"] <= CEILINGS["worker_rss_mb_max"], memory
    assert short > sum(paths.values()) / 2, paths  # the stack really took the short window
