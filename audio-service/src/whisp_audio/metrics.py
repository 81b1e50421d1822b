"""Prometheus metrics of the audio service (served by the shared `/metrics`)."""

from prometheus_client import Counter, Gauge, Histogram

UPLOADS = Counter(
    "whisp_audio_uploads_total",
    "POST /recordings requests, by outcome (accepted/refused) and error code.",
    ["outcome", "code"],
)
RECORDED_SECONDS = Counter(
    "whisp_audio_recorded_seconds_total",
    "Seconds of audio accepted and stored, by source (upload/device/live).",
    ["source"],
)
ACTIVE_RECORDINGS = Gauge(
    "whisp_audio_active_recordings",
    "Device recordings holding a device or a finished clip right now.",
)
PUBLISHED = Counter(
    "whisp_audio_published_total",
    "RecordingCompleted events published, by source.",
    ["source"],
)
INGEST_SECONDS = Histogram(
    "whisp_audio_ingest_seconds",
    "From the last byte received (or stop) to the event published.",
    ["source"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
DEVICE_CANCELLED = Counter(
    "whisp_audio_device_cancelled_total",
    "Device recordings cancelled, by reason (client/disconnect/shutdown).",
    ["reason"],
)
RETENTION_DELETED = Counter(
    "whisp_audio_retention_deleted_total", "Recordings deleted by the retention policy."
)
STORED_BYTES = Gauge("whisp_audio_stored_bytes", "Bytes of recordings kept on disk.")
AUDIO_DISCARDED = Counter(
    "whisp_audio_discarded_total",
    "Recordings whose audio was deleted once transcribed (their owner's keep_audio off).",
)
PURGED = Counter(
    "whisp_audio_purged_total", "Recordings removed by a user's purge (retention or delete)."
)
LIVE_SESSIONS = Counter(
    "whisp_audio_live_sessions_total",
    "Live recordings by event: started, committed, max_duration (committed at the limit by "
    "itself), cancelled.",
    ["event"],
)
LIVE_AUDIO_SECONDS = Counter(
    "whisp_audio_live_audio_seconds_total",
    "Seconds of live audio taken in (counted at 16 kHz, after resampling).",
)
LIVE_REFUSED = Counter(
    "whisp_audio_live_refused_total", "Live requests refused, by error code.", ["code"]
)
