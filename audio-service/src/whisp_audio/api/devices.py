"""Recording from a microphone attached to the machine the service runs on.

    POST /devices/{device}/recording          start (arm + start)
    POST /devices/{device}/recording/stop     stop -> store -> publish -> recording id
    POST /devices/{device}/recording/cancel   drop it, release the device
    GET  /devices/{device}/recording          status (state, elapsed, level)
    GET  /devices/{device}/recording/events   the same as Server-Sent Events
    GET  /devices                             input devices PortAudio can see

`{device}` is `default`, a PortAudio index, or a device name (e.g. `pulse`). Each
caller has its own recorder per device. A client must keep the event stream open or
poll the status; otherwise its recording is cancelled after `disconnect_grace_s`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Body
from fastapi.sse import EventSourceResponse, ServerSentEvent

from whisp_audio.api.deps import CallerDep, RecordingsDep
from whisp_audio.api.models import StopResult, device_status
from whisp_recorder.devices import list_input_devices
from whisp_shared.devices import DeviceList, DeviceStatus, StartDeviceRecording
from whisp_shared.http_errors import ERROR_RESPONSES

NO_DEVICES = (
    "no input devices: PortAudio sees no sound card and no audio server (is PulseAudio "
    "running and PULSE_SERVER set for the audio service?)"
)


router = APIRouter(prefix="/devices", tags=["devices"], responses=ERROR_RESPONSES)


@router.get("")
async def list_devices() -> DeviceList:
    devices = await asyncio.to_thread(list_input_devices)
    return DeviceList(devices=devices, message=None if devices else NO_DEVICES)


@router.post("/{device}/recording", status_code=201)
async def start_recording(
    device: str,
    caller: CallerDep,
    recordings: RecordingsDep,
    body: Annotated[StartDeviceRecording | None, Body()] = None,
) -> DeviceStatus:
    request = body or StartDeviceRecording()
    snapshot = await recordings.start(caller.user_id, device, request, request.max_duration_s)
    return device_status(snapshot)


@router.post("/{device}/recording/stop", status_code=201)
async def stop_recording(device: str, caller: CallerDep, recordings: RecordingsDep) -> StopResult:
    return StopResult.of_result(await recordings.stop(caller.user_id, device))


@router.post("/{device}/recording/cancel")
async def cancel_recording(
    device: str, caller: CallerDep, recordings: RecordingsDep
) -> DeviceStatus:
    return device_status(await recordings.cancel(caller.user_id, device))


@router.get("/{device}/recording")
async def recording_status(
    device: str, caller: CallerDep, recordings: RecordingsDep
) -> DeviceStatus:
    return device_status(recordings.status(caller.user_id, device))


@router.get("/{device}/recording/events", response_class=EventSourceResponse)
async def recording_events(
    device: str, caller: CallerDep, recordings: RecordingsDep
) -> AsyncIterator[ServerSentEvent]:
    async for snapshot in recordings.events(caller.user_id, device):
        yield ServerSentEvent(data=device_status(snapshot), event="status")
