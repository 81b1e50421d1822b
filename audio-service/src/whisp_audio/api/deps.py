"""Dependencies the routes declare; each reads what `create_app` put on `app.state`, so a
test can build an app with other parts and the routes stay unchanged.

`CallerDep` is the shared one (`whisp_shared.http_caller`), re-exported so that every route
takes its dependencies from this one module.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from whisp_audio.device_recordings import DeviceRecordings
from whisp_audio.ingest import Ingest
from whisp_audio.live import LiveRecordings
from whisp_audio.settings import AudioSettings
from whisp_audio.storage import RecordingStore
from whisp_shared.http_caller import CallerDep
from whisp_shared.service import app_state

SettingsDep = Annotated[AudioSettings, Depends(app_state("settings", AudioSettings))]
StoreDep = Annotated[RecordingStore, Depends(app_state("store", RecordingStore))]
IngestDep = Annotated[Ingest, Depends(app_state("ingest", Ingest))]
RecordingsDep = Annotated[DeviceRecordings, Depends(app_state("recordings", DeviceRecordings))]
LiveDep = Annotated[LiveRecordings, Depends(app_state("live", LiveRecordings))]

__all__ = ["CallerDep", "IngestDep", "LiveDep", "RecordingsDep", "SettingsDep", "StoreDep"]
