"""Dependencies the routes declare; each reads what `create_app` put on `app.state`, so a
test can build an app with other parts and the routes stay unchanged."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from whisp_audio.auth import CallerDep
from whisp_audio.device_recordings import DeviceRecordings
from whisp_audio.ingest import Ingest
from whisp_audio.settings import AudioSettings
from whisp_audio.storage import RecordingStore


def _settings(request: Request) -> AudioSettings:
    settings: AudioSettings = request.app.state.settings
    return settings


def _store(request: Request) -> RecordingStore:
    store: RecordingStore = request.app.state.store
    return store


def _ingest(request: Request) -> Ingest:
    ingest: Ingest = request.app.state.ingest
    return ingest


def _recordings(request: Request) -> DeviceRecordings:
    recordings: DeviceRecordings = request.app.state.recordings
    return recordings


SettingsDep = Annotated[AudioSettings, Depends(_settings)]
StoreDep = Annotated[RecordingStore, Depends(_store)]
IngestDep = Annotated[Ingest, Depends(_ingest)]
RecordingsDep = Annotated[DeviceRecordings, Depends(_recordings)]

__all__ = ["CallerDep", "IngestDep", "RecordingsDep", "SettingsDep", "StoreDep"]
