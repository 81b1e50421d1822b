"""What the audio service's routes take and answer: the HTTP shapes of the domain's values.

The recording options themselves are the shared `RecordingOptions` (one model for every
service); the request models here only add what a route needs beside them and refuse
fields nobody defined, so a typo (`langauge=en`) is a 422 rather than silently ignored.
Shapes the gateway reads are shared too (`whisp_shared.queue`, `whisp_shared.devices`):
this module only builds them from the domain's values.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime

from fastapi import UploadFile
from pydantic import BaseModel, ConfigDict, Field

from whisp_audio.device_recordings import DeviceResult, DeviceSnapshot, StoppedBy
from whisp_audio.ingest import Accepted
from whisp_audio.live import LiveCommitted, LiveStarted
from whisp_shared import queue
from whisp_shared.devices import DeviceStatus
from whisp_shared.options import RecordingForm, RecordingOptions


class UploadForm(RecordingForm):
    """The multipart form of `POST /recordings`: the options and the file, as one model.

    The file is a field of the model rather than a parameter beside it: FastAPI validates a
    form model against the whole form, file part included, so only this way can unknown
    fields be refused.
    """

    model_config = ConfigDict(extra="forbid")

    file: UploadFile = Field(description="the audio file; its type is sniffed")


class RecordingAccepted(queue.RecordingAccepted):
    """A recording stored and queued for transcription: the shared answer (the gateway
    reads it), built from the domain's `whisp_audio.ingest.Accepted`."""

    @classmethod
    def of(cls, accepted: Accepted) -> RecordingAccepted:
        return cls(**asdict(accepted))


class StopResult(RecordingAccepted):
    """A device recording stored and queued, and what ended it."""

    stopped_by: StoppedBy

    @classmethod
    def of_result(cls, result: DeviceResult) -> StopResult:
        return StopResult(**asdict(result.accepted), stopped_by=result.stopped_by)


def device_status(snapshot: DeviceSnapshot) -> DeviceStatus:
    """The shared answer about one (user, device), from the domain's snapshot."""
    status = snapshot.status
    return DeviceStatus(
        device=snapshot.device,
        state=status.state,
        elapsed_s=status.elapsed_s,
        level_dbfs=status.level_dbfs,
        reason=status.reason,
        max_duration_s=snapshot.max_duration_s,
        error=snapshot.error,
        last_recording_id=snapshot.last_recording_id,
    )


class RecordingInfo(BaseModel):
    recording_id: str
    user_id: str
    content_type: str
    duration_s: float
    size: int
    created_at: datetime
    source: str


class LiveStart(RecordingOptions):
    """Body of `POST /live`: the options, and the rate of the PCM16 the client will send."""

    model_config = ConfigDict(extra="forbid")

    sample_rate: int = Field(default=24_000, ge=8_000, le=48_000)
    """Rate of the PCM16 LE mono chunks that follow (24 kHz: OpenAI's Realtime default)."""
    max_duration_s: float | None = Field(default=None, gt=0)
    """Commit by itself at this length (at most the service's own `max_duration_s`)."""


class LiveRecording(BaseModel):
    """A live recording opened: send its audio to `/live/{recording_id}/audio`."""

    recording_id: str
    sample_rate: int
    max_duration_s: float

    @classmethod
    def of(cls, started: LiveStarted) -> LiveRecording:
        return cls(**asdict(started))


class LiveCommit(BaseModel):
    """A live recording stored; its transcript follows on the bus (TranscriptReady)."""

    recording_id: str
    duration_s: float

    @classmethod
    def of(cls, committed: LiveCommitted) -> LiveCommit:
        return cls(**asdict(committed))
