"""Prometheus metrics of a transcription worker."""

from __future__ import annotations

import asyncio

from prometheus_client import Counter, Gauge, Histogram

from whisp_shared.bus import EventBus
from whisp_shared.logs import get_logger
from whisp_shared.streams import RECORDINGS, TRANSCRIBERS_GROUP

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


async def refresh_queue_lag(bus: EventBus, every_s: float = 5.0) -> None:
    """Keep `QUEUE_LAG` current for dashboards until cancelled (KEDA reads Redis itself)."""
    while True:
        try:
            QUEUE_LAG.set(await bus.group_lag(RECORDINGS, TRANSCRIBERS_GROUP))
        except Exception as exc:  # a metric must never take the worker down
            log.warning("queue lag refresh failed", error=str(exc))
        await asyncio.sleep(every_s)
