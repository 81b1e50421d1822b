"""Presentation-free recorder core: sources, the state machine, the recorder, the registry.

Nothing here knows about HTTP, terminals or hotkeys; the API, the CLI and the hotkey
daemon all drive the same `Recorder`.
"""

from whisp_audio.recorder.file_source import FileReplaySource
from whisp_audio.recorder.level import FLOOR_DBFS, LevelMeter
from whisp_audio.recorder.machine import (
    TRANSITIONS,
    Action,
    InvalidTransition,
    RecorderState,
    allowed,
    next_state,
)
from whisp_audio.recorder.recorder import Recorder, RecorderStatus, Recording, Subscriber
from whisp_audio.recorder.registry import RecorderKey, RecorderRegistry
from whisp_audio.recorder.source import (
    AudioSource,
    DeviceNotFound,
    ErrorCallback,
    FrameCallback,
    Frames,
    SourceError,
)

__all__ = [
    "FLOOR_DBFS",
    "TRANSITIONS",
    "Action",
    "AudioSource",
    "DeviceNotFound",
    "ErrorCallback",
    "FileReplaySource",
    "FrameCallback",
    "Frames",
    "InvalidTransition",
    "LevelMeter",
    "Recorder",
    "RecorderKey",
    "RecorderRegistry",
    "RecorderState",
    "RecorderStatus",
    "Recording",
    "SourceError",
    "Subscriber",
    "allowed",
    "next_state",
]
