"""Presentation-free recorder core: sources, the state machine, the recorder, the registry.

Nothing here knows about HTTP, terminals or hotkeys; the audio service's API, the CLI and
the hotkey daemon all drive the same `Recorder`. It is a package of its own so that the desk
clients install the recorder without any service (no web framework, no bus client).
"""

from whisp_recorder.file_source import FileReplaySource
from whisp_recorder.level import FLOOR_DBFS, LevelMeter
from whisp_recorder.machine import (
    TRANSITIONS,
    Action,
    InvalidTransition,
    RecorderState,
    allowed,
    next_state,
)
from whisp_recorder.recorder import Recorder, RecorderStatus, Recording, Subscriber
from whisp_recorder.registry import RecorderKey, RecorderRegistry
from whisp_recorder.source import (
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
