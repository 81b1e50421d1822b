"""Which input devices PortAudio sees.

PortAudio reads the device list once, when it initialises; an audio server started
later (PulseAudio in a test, a USB microphone plugged in) is only seen after a
re-initialisation, which is safe only while no stream is open.

The devices come as the shared `InputDevice`: the audio service lists them as they are
over HTTP, and the gateway reads that answer.
"""

from __future__ import annotations

from typing import Any

import sounddevice as sd  # type: ignore[import-untyped]

from whisp_recorder.sounddevice_source import open_stream_count, portaudio_lock
from whisp_shared.devices import InputDevice


def refresh_portaudio() -> bool:
    """Re-read the device list if no stream is open; returns whether it did."""
    with portaudio_lock:
        if open_stream_count():
            return False
        sd._terminate()
        sd._initialize()
        return True


def list_input_devices(refresh: bool = True) -> list[InputDevice]:
    """Devices that can record, the system default flagged. Empty without any audio backend."""
    if refresh:
        refresh_portaudio()
    try:
        devices: Any = sd.query_devices()
        host_apis: Any = sd.query_hostapis()
    except sd.PortAudioError:
        return []
    try:
        default_in = int(sd.query_devices(kind="input")["index"])
    except (sd.PortAudioError, ValueError):
        default_in = -1
    found = []
    for index, info in enumerate(devices):
        if int(info["max_input_channels"]) <= 0:
            continue
        found.append(
            InputDevice(
                index=index,
                name=str(info["name"]),
                host_api=str(host_apis[int(info["hostapi"])]["name"]),
                max_input_channels=int(info["max_input_channels"]),
                default_sample_rate=float(info["default_samplerate"]),
                is_default=index == default_in,
            )
        )
    return found
