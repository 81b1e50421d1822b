"""A microphone on the audio service's machine: what its `/devices` routes take and answer.

The audio service answers with these (the recorder lists the `InputDevice`s), and the
gateway's `/api/devices` routes read its answers and pass them to browsers as they are, so
the shapes are defined here once. None of them holds anything internal (no storage URI, no
file path): a `DeviceStatus` says only how a caller's own recorder is doing, and a stop
answers with the shared `queue.RecordingAccepted`, which the gateway trims.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from whisp_shared.options import RecordingOptions

DeviceState = Literal["idle", "armed", "recording", "processing"]
"""The recorder's state (`whisp_recorder.RecorderState`) as it crosses the wire."""


class InputDevice(BaseModel):
    """One device PortAudio can record from, on the audio service's machine."""

    index: int
    name: str
    host_api: str
    max_input_channels: int
    default_sample_rate: float
    is_default: bool
    """The system's default input (what `default` records from)."""


class DeviceList(BaseModel):
    devices: list[InputDevice]
    message: str | None = None
    """Why the list is empty (no sound card, no audio server), when it is."""


class StartDeviceRecording(RecordingOptions):
    """Body of a start: the options an upload takes, all optional, and when to stop.

    Unknown fields are refused, so a typo (`langauge`) is a 422 rather than ignored. The
    gateway completes the caller's body with their settings before passing it on."""

    model_config = ConfigDict(extra="forbid")

    max_duration_s: float | None = Field(default=None, gt=0)
    """Stop by itself after this long (at most the audio service's own limit)."""


class DeviceStatus(BaseModel):
    """One caller's recorder on one device: its state and level, and what ended it last."""

    device: str
    state: DeviceState
    elapsed_s: float
    level_dbfs: float
    reason: str
    """What the last change was (`start`, `stop`, `level`, `max_duration`, `error`, …)."""
    max_duration_s: float | None
    error: str | None = None
    last_recording_id: str | None = None
    """The recording the last stop (or the maximum duration) stored."""
