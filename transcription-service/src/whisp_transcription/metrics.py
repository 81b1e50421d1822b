"""Prometheus metrics of a transcription worker."""

from __future__ import annotations

import asyncio

from prometheus_client import Counter, Gauge, Histogram

from whisp_shared.bus import EventBus
from whisp_shared.logs import get_logger
from whisp_shared.streams import LIVE_RECORDINGS, RECORDINGS, TRANSCRIBERS_GROUP

log = get_logger(__name__)

CLIPS = Counter("whisp_transcription_clips_total", "Clips transcribed.", ["engine", "model"])
FAILURES = Counter(
    "whisp_transcription_failures_total", "Clips that failed, by stable code.", ["code"]
)
PROCESSING_SECONDS = Histogram(
    "whisp_transcription_processing_seconds",
    "Fetch + decode + transcribe time per clip.",
    buckets=(0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64),
)
REAL_TIME_FACTOR = Histogram(
    "whisp_transcription_real_time_factor",
    "Processing time divided by audio duration.",
    buckets=(0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 2),
)
DECODE_PATH = Counter(
    "whisp_transcription_decode_path_total",
    "Clips by decode path (short window, full 30-s, none for silence) and why.",
    ["path", "reason"],
)
AUDIO_SECONDS = Counter("whisp_transcription_audio_seconds_total", "Audio transcribed.")
QUEUE_LAG = Gauge(
    "whisp_transcription_queue_lag",
    "Recordings waiting for a transcriber (entries not yet delivered plus pending).",
)
MODEL_LOADED = Gauge("whisp_transcription_model_loaded", "1 while the model is in memory.")

LIVE_ACTIVE = Gauge(
    "whisp_transcription_live_sessions", "Live recordings this worker is following right now."
)
LIVE_QUEUE_LAG = Gauge(
    "whisp_transcription_live_queue_lag",
    "Live recordings waiting for a transcriber (entries not yet delivered plus pending).",
)
LIVE_OUTCOMES = Counter(
    "whisp_transcription_live_total",
    "Live recordings followed to their end, by outcome (committed, cancelled, failed).",
    ["outcome"],
)
LIVE_PARTIALS = Counter(
    "whisp_transcription_live_partials_total", "Partial transcripts published to users."
)
LIVE_MODEL_SECONDS = Counter(
    "whisp_transcription_live_model_seconds_total",
    "Model-thread seconds spent on live recordings, by pass (partial, speculate, final).",
    ["kind"],
)
LIVE_FINAL_SECONDS = Histogram(
    "whisp_transcription_live_final_seconds",
    "From reading a live recording's commit to its transcript (what the user waits).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1, 2, 5),
)


async def refresh_queue_lag(bus: EventBus, live: bool = True, every_s: float = 5.0) -> None:
    """Keep the lag gauges current for dashboards until cancelled (KEDA reads Redis itself)."""
    gauges = [(QUEUE_LAG, RECORDINGS)] + ([(LIVE_QUEUE_LAG, LIVE_RECORDINGS)] if live else [])
    while True:
        for gauge, stream in gauges:
            try:
                gauge.set(await bus.group_lag(stream, TRANSCRIBERS_GROUP))
            except Exception as exc:  # a metric must never take the worker down
                log.warning("queue lag refresh failed", stream=stream, error=str(exc))
        await asyncio.sleep(every_s)
