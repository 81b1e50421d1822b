"""`create_app()` for the audio service: storage, the recorder registry, the HTTP API.

Nothing is opened at import time. The lifespan creates the data folder, runs the
retention policy (at start, then every `retention_interval_s`), watches device
recordings for vanished clients, and on shutdown releases every device. The bus reads
`whisp:transcripts` in the `audio` group, to delete audio its owner does not keep
(`discard`).

Callers are checked by the shared `CallerDep` against `app.state.caller_policy`; every
error leaves through the shared handler set as `{code, message, retryable}`.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from whisp_audio import metrics
from whisp_audio.api import audio_files, devices, live, purge, uploads
from whisp_audio.api.uploads import install_upload_middleware
from whisp_audio.device_recordings import DeviceRecordings, SourceFactory
from whisp_audio.discard import discard_consumer
from whisp_audio.ingest import Ingest
from whisp_audio.live import LiveRecordings
from whisp_audio.settings import AudioSettings
from whisp_audio.storage import RecordingStore
from whisp_recorder import AudioSource, RecorderRegistry
from whisp_shared.bus import EventBus
from whisp_shared.caller import CallerPolicy
from whisp_shared.config import BusSettings
from whisp_shared.logs import get_logger
from whisp_shared.service import background, create_service_app

log = get_logger(__name__)


def microphone(device: str | int | None) -> AudioSource:
    """The default source factory: a PortAudio input stream (imported only when used)."""
    from whisp_recorder.sounddevice_source import SoundDeviceSource  # noqa: PLC0415

    return SoundDeviceSource(device)


def create_app(
    settings: AudioSettings | None = None,
    bus: EventBus | None = None,
    source_factory: SourceFactory | None = None,
) -> FastAPI:
    """`source_factory` turns a device reference into an AudioSource (a microphone by
    default; a FileReplaySource to drive device recordings from files)."""
    settings = settings or AudioSettings()
    settings.check_exposure()
    bus = bus or EventBus(BusSettings())
    store = RecordingStore(settings.data_dir)
    ingest = Ingest(store, bus, settings)
    registry = RecorderRegistry()
    recordings = DeviceRecordings(registry, ingest, settings, source_factory or microphone)
    live_recordings = LiveRecordings(store, ingest, bus, settings)
    bus.consume(discard_consumer(store, live_recordings))

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        store.root.mkdir(parents=True, exist_ok=True)
        metrics.ACTIVE_RECORDINGS.set_function(registry.active_count)
        try:
            async with background(_retention_loop(store, settings), recordings.watchdog()):
                yield
        finally:
            await recordings.shutdown()

    async def storage_writable() -> bool:
        return store.root.is_dir() and os.access(store.root, os.W_OK)

    app = create_service_app(
        "WhisPTT audio service", bus, lifespan=lifespan, checks={"storage": storage_writable}
    )
    app.state.settings = settings
    app.state.caller_policy = CallerPolicy(token=settings.service_token)
    app.state.store = store
    app.state.ingest = ingest
    app.state.registry = registry
    app.state.recordings = recordings
    app.state.live = live_recordings
    install_upload_middleware(app, settings)
    app.include_router(uploads.router)
    app.include_router(audio_files.router)
    app.include_router(purge.router)
    app.include_router(devices.router)
    app.include_router(live.router)
    return app


async def _retention_loop(store: RecordingStore, settings: AudioSettings) -> None:
    max_age_s = settings.retention_days * 86_400 if settings.retention_days else None
    while True:
        try:
            report = await asyncio.to_thread(
                store.enforce_retention, max_age_s, settings.retention_max_bytes
            )
            metrics.RETENTION_DELETED.inc(report.deleted)
            metrics.STORED_BYTES.set(report.kept_bytes)
        except Exception as exc:  # retention must never take the service down
            log.warning("retention run failed", error=str(exc))
        await asyncio.sleep(settings.retention_interval_s)
