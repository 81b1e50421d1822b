"""Prometheus metrics of a transcription worker.

What its group has left of each stream it reads (lag and pending, as KEDA sees them) is the
bus's `whisp_bus_group_lag` / `whisp_bus_group_pending` (`whisp_shared.bus_depth`), which the
app keeps current (`app.create_app`).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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
MODEL_LOADED = Gauge("whisp_transcription_model_loaded", "1 while the model is in memory.")

LIVE_ACTIVE = Gauge(
    "whisp_transcription_live_sessions", "Live recordings this worker is following right now."
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
