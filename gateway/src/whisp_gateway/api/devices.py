"""Drive a recorder on the audio service's machine: its microphone, the caller's settings.

    GET  /api/devices                              input devices the audio service sees
    POST /api/devices/{device}/recording           start (body: the recording's options)
    POST /api/devices/{device}/recording/stop      stop -> stored, queued -> the recording id
    POST /api/devices/{device}/recording/cancel    drop it, release the device
    GET  /api/devices/{device}/recording           status (state, elapsed, level)
    GET  /api/devices/{device}/recording/events    the same as SSE, while it changes

The audio service keeps one recorder per caller and device; the gateway passes it the
signed-in user only, so nobody can see, stop or cancel another user's recording. A start
carries the caller's own settings exactly as an upload does (`user_options`), plus their
`default_agent` when the body names no agent: a device recording has no client page to
preselect it. A stop answers like an upload (the id; the transcript then comes on
`GET /api/events`). The start counts against the rate limit and checks the daily audio
quota; the stop adds the recording's seconds to it.

The bodies and answers are the audio service's own (`whisp_shared.devices`), passed on as
it gives them; none carries anything internal, and a stop's answer is trimmed to the id and
duration (`Submitted`), so no storage URI reaches a browser.

The audio service cancels a recording whose client neither polls the status nor holds
the event stream for its `disconnect_grace_s`: the gateway's status and stream pass
through to it, so they keep the recording alive as they would there.

Off unless `web.devices_enabled` allows the caller (403 `forbidden`): see that setting.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import suppress
from typing import Annotated

import httpx
from fastapi import APIRouter, Body, Depends, Path
from fastapi.sse import EventSourceResponse

from whisp_gateway.api.deps import AgentsDep, AudioDep, LimitedUser, QuotaDep, RepoDep, SettingsDep
from whisp_gateway.api.responses import JSON_BODY, LIMITED, SIGNED_IN, Responses, errors
from whisp_gateway.auth import CurrentUser, single_user_mode
from whisp_gateway.clients import Submitted
from whisp_gateway.user_options import default_route, resolve_options
from whisp_shared.codes import ErrorCode
from whisp_shared.devices import DeviceList, DeviceStatus, StartDeviceRecording
from whisp_shared.errors import WhispError

DeviceName = Annotated[
    str,
    Path(
        min_length=1,
        max_length=128,
        description="`default`, a PortAudio index or a device name (`GET /api/devices`)",
    ),
]
AGENT_FIELDS = frozenset({"agent_id", "pipeline"})

OFF = "`forbidden`: device recording is off on this gateway (`web.devices_enabled`)"
UNAVAILABLE = "`audio_unavailable`: the audio service cannot be reached; retry"


def refusals(
    *statuses: int, notes: dict[int, str] | None = None, streaming: bool = False
) -> Responses:
    """What every route here may answer (401, 403 when off, the audio service's 502/503),
    and its own."""
    return errors(
        *SIGNED_IN,
        502,
        503,
        *statuses,
        notes={403: OFF, 503: UNAVAILABLE, **(notes or {})},
        streaming=streaming,
    )


START_REFUSALS = refusals(
    *LIMITED,
    *JSON_BODY,
    notes={
        404: "`unknown_device`: no input device by that name or index",
        409: "`invalid_transition`: your recorder on this device is already busy; stop or "
        "cancel it first",
        422: "`invalid_request`: an unknown field or a bad value in the body",
        429: "`rate_limited` (honour `Retry-After`) or `quota_exceeded` (today's audio "
        "seconds are used up; `Retry-After`: the next UTC midnight)",
        503: "`device_unavailable` (the device would not open: busy, or its audio server "
        f"is down) or {UNAVAILABLE}",
    },
)
STOP_REFUSALS = refusals(
    notes={
        409: "`not_recording`: nothing of yours is recording on this device",
        422: "`empty_recording`: the device delivered no audio",
        503: f"`unavailable` (the audio service's bus: nothing was kept) or {UNAVAILABLE}",
    },
)
CANCEL_REFUSALS = refusals(
    422, notes={409: "`not_recording`: nothing of yours is recording on this device"}
)


class DevicesDisabled(WhispError):
    """The caller may not drive the audio service's microphone here (`devices_enabled`)."""

    code = ErrorCode.FORBIDDEN
    status = 403


async def devices_allowed(user: CurrentUser, settings: SettingsDep, repo: RepoDep) -> None:
    """Every route here: signed in first (401), then allowed by `web.devices_enabled`."""
    allowed = settings.devices_enabled
    if allowed is None:
        allowed = await single_user_mode(settings, repo)
    if not allowed:
        raise DevicesDisabled(
            "recording from the server's own microphone is off on this gateway "
            "(web.devices_enabled); upload audio or stream it instead"
        )


router = APIRouter(
    prefix="/api/devices",
    tags=["devices"],
    dependencies=[Depends(devices_allowed)],
)


@router.get("", responses=refusals())
async def list_devices(user: CurrentUser, audio: AudioDep) -> DeviceList:
    return DeviceList.model_validate(await audio.devices(user.id))


@router.post("/{device}/recording", status_code=201, responses=START_REFUSALS)
async def start_recording(
    device: DeviceName,
    user: LimitedUser,
    audio: AudioDep,
    agents: AgentsDep,
    repo: RepoDep,
    quota: QuotaDep,
    body: Annotated[StartDeviceRecording | None, Body()] = None,
) -> DeviceStatus:
    """Start recording now, with the body's options completed with your settings as an
    upload's are. Naming neither `agent_id` nor `pipeline` uses your `default_agent` (if
    you may still run it); naming either, even as null, uses that. Keep `…/events` open or
    poll the status while it records: a recording nobody watches is cancelled after a few
    seconds."""
    request = body or StartDeviceRecording()
    await quota.check(user)
    saved = await repo.get_settings(user.id)
    options = resolve_options(saved, request)
    if not AGENT_FIELDS & request.model_fields_set:
        route = await default_route(agents, user.id, saved.default_agent)
        options = options.model_copy(update=route.model_dump(exclude={"session_id"}))
    status = await audio.device_start(user.id, device, options, request.max_duration_s)
    return DeviceStatus.model_validate(status)


@router.post("/{device}/recording/stop", status_code=201, responses=STOP_REFUSALS)
async def stop_recording(
    device: DeviceName, user: CurrentUser, audio: AudioDep, quota: QuotaDep
) -> Submitted:
    """Stop, store and queue for transcription: its id (the transcript follows on
    `GET /api/events`). After a stop by the maximum duration, the recording it stored."""
    submitted = await audio.device_stop(user.id, device)
    await quota.add(user.id, submitted.duration_s or 0.0, submitted.recording_id)
    return submitted


@router.post("/{device}/recording/cancel", responses=CANCEL_REFUSALS)
async def cancel_recording(device: DeviceName, user: CurrentUser, audio: AudioDep) -> DeviceStatus:
    return DeviceStatus.model_validate(await audio.device_cancel(user.id, device))


@router.get("/{device}/recording", responses=refusals(422))
async def recording_status(device: DeviceName, user: CurrentUser, audio: AudioDep) -> DeviceStatus:
    return DeviceStatus.model_validate(await audio.device_status(user.id, device))


async def upstream_events(
    device: DeviceName, user: CurrentUser, audio: AudioDep
) -> AsyncIterator[httpx.Response]:
    """The audio service's stream, opened before the response starts (so its refusals keep
    their status) and closed when the client goes (so the audio service sees it go)."""
    upstream = await audio.device_events(user.id, device)
    try:
        yield upstream
    finally:
        await upstream.aclose()


async def sse_data(upstream: httpx.Response) -> AsyncIterator[str]:
    """The `data` of each event of an SSE stream; ends quietly if the stream breaks (the
    client reconnects)."""
    data: list[str] = []
    with suppress(httpx.TransportError):
        async for line in upstream.aiter_lines():
            if line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
            elif not line and data:
                yield "\n".join(data)
                data = []


@router.get(
    "/{device}/recording/events",
    response_class=EventSourceResponse,
    responses=refusals(422, streaming=True),
)
async def recording_events(
    upstream: Annotated[httpx.Response, Depends(upstream_events)],
) -> AsyncIterator[DeviceStatus]:
    """Your recorder's status now, then at every change (and level ticks while it
    records); holding it open keeps the recording alive."""
    async for data in sse_data(upstream):
        yield DeviceStatus.model_validate_json(data)
