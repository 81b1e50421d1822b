"""HTTP clients for the services behind the gateway (audio, agents).

The gateway authenticates people; downstream it speaks for them with the service token and
`X-Whisp-User` (`whisp_shared.caller`). Upstream errors keep their `code`, `message` and
`retryable` (a 413 from the audio service stays a 413 for the browser); an unreachable
service becomes 503 with that service's `*_unavailable` code.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import BaseModel

from whisp_shared.caller import service_headers
from whisp_shared.codes import ErrorCode
from whisp_shared.devices import StartDeviceRecording
from whisp_shared.errors import WhispError
from whisp_shared.options import AgentRoute, RecordingOptions
from whisp_shared.queue import RecordingAccepted
from whisp_shared.user_data import (
    AGENT_DATA_PATH,
    AUDIO_PURGE_PATH,
    AgentData,
    AgentDataDeleted,
    AudioPurged,
)

KINDS = ("agents", "pipelines")
"""The two lists of the agent service's `GET /agents`."""


class Submitted(BaseModel):
    recording_id: str
    duration_s: float | None = None


class ServiceClient:
    def __init__(
        self,
        base_url: str,
        name: str,
        unavailable: ErrorCode,
        token: str | None,
        timeout_s: float = 60,
    ) -> None:
        self.name = name
        self.unavailable = unavailable
        self.client = httpx.AsyncClient(
            base_url=base_url, headers=service_headers(token), timeout=timeout_s
        )

    async def aclose(self) -> None:
        await self.client.aclose()

    async def request(self, method: str, path: str, user_id: str, **kwargs: Any) -> httpx.Response:
        headers = {**service_headers(user_id=user_id), **kwargs.pop("headers", {})}
        try:
            response = await self.client.request(method, path, headers=headers, **kwargs)
        except httpx.TransportError as exc:
            raise self._unreachable() from exc
        if response.status_code >= 400:
            raise self._error(response)
        return response

    async def open_stream(
        self, method: str, path: str, user_id: str, **kwargs: Any
    ) -> httpx.Response:
        """Start a streamed request; errors before the first byte keep their status."""
        headers = {**service_headers(user_id=user_id), **kwargs.pop("headers", {})}
        request = self.client.build_request(method, path, headers=headers, **kwargs)
        try:
            response = await self.client.send(request, stream=True)
        except httpx.TransportError as exc:
            raise self._unreachable() from exc
        if response.status_code >= 400:
            await response.aread()
            await response.aclose()
            raise self._error(response)
        return response

    def _unreachable(self) -> WhispError:
        return WhispError(
            f"the {self.name} service cannot be reached",
            code=self.unavailable,
            status=503,
            retryable=True,
            retry_after=5,
        )

    def _error(self, response: httpx.Response) -> WhispError:
        """The upstream's own error, passed on (5xx other than 502-504 become 502)."""
        status = response.status_code
        try:
            body = response.json()
            code, message = ErrorCode(body["code"]), str(body["message"])
            retryable = bool(body.get("retryable", False))
        except (ValueError, KeyError, TypeError):
            code = ErrorCode.UPSTREAM_BAD_RESPONSE
            message = f"the {self.name} service answered {status}"
            retryable = status >= 500
        headers = {"Retry-After": response.headers["Retry-After"]} if (
            "Retry-After" in response.headers
        ) else None  # fmt: skip
        return WhispError(
            message,
            code=code,
            status=status if status < 500 or status in (502, 503, 504) else 502,
            retryable=retryable,
            headers=headers,
        )


class AudioService(ServiceClient):
    def __init__(self, base_url: str, token: str | None) -> None:
        super().__init__(base_url, "audio", ErrorCode.AUDIO_UNAVAILABLE, token)

    async def submit(
        self,
        user_id: str,
        data: bytes,
        filename: str,
        content_type: str,
        options: RecordingOptions,
    ) -> RecordingAccepted:
        """Upload; the answer says where the recording waits (`queue`), never for a page."""
        response = await self.request(
            "POST",
            "/recordings",
            user_id,
            files={"file": (filename, data, content_type)},
            data=options.as_form(),
        )
        return RecordingAccepted.model_validate(response.json())

    async def live_start(self, user_id: str, options: RecordingOptions, rate: int) -> str:
        """Open a live recording (its audio follows with `live_append`); its id."""
        body = {**options.model_dump(exclude_none=True), "sample_rate": rate}
        response = await self.request("POST", "/live", user_id, json=body)
        return str(response.json()["recording_id"])

    async def live_append(self, user_id: str, recording_id: str, pcm16: bytes) -> None:
        await self.request(
            "POST",
            f"/live/{recording_id}/audio",
            user_id,
            content=pcm16,
            headers={"Content-Type": "application/octet-stream"},
        )

    async def live_commit(self, user_id: str, recording_id: str) -> Submitted:
        response = await self.request("POST", f"/live/{recording_id}/commit", user_id)
        return Submitted.model_validate(response.json())

    async def live_cancel(self, user_id: str, recording_id: str) -> None:
        await self.request("POST", f"/live/{recording_id}/cancel", user_id)

    # A microphone on the audio service's own machine (`/devices`): one recorder per
    # caller and device there, so passing the user is all the isolation it needs.

    @staticmethod
    def _device(device: str, action: str = "") -> str:
        """The path of one device's recorder (`action`: "", "/stop", "/cancel", "/events");
        the name quoted whole, so "hw:0,0" or a name with a slash stays one segment."""
        return f"/devices/{quote(device, safe='')}/recording{action}"

    async def devices(self, user_id: str) -> Any:
        """The input devices the audio service sees (its `DeviceList`, as JSON)."""
        return (await self.request("GET", "/devices", user_id)).json()

    async def device_start(
        self, user_id: str, device: str, options: RecordingOptions, max_duration_s: float | None
    ) -> Any:
        """Start recording with `options` as given (already resolved); its status (JSON)."""
        body = StartDeviceRecording(**options.model_dump(), max_duration_s=max_duration_s)
        payload = body.model_dump(mode="json", exclude_none=True)
        return (await self.request("POST", self._device(device), user_id, json=payload)).json()

    async def device_stop(self, user_id: str, device: str) -> Submitted:
        """Stop, store and publish: the recording, as an upload's (no internal fields)."""
        response = await self.request("POST", self._device(device, "/stop"), user_id)
        return Submitted.model_validate(response.json())

    async def device_cancel(self, user_id: str, device: str) -> Any:
        return (await self.request("POST", self._device(device, "/cancel"), user_id)).json()

    async def device_status(self, user_id: str, device: str) -> Any:
        return (await self.request("GET", self._device(device), user_id)).json()

    async def device_events(self, user_id: str, device: str) -> httpx.Response:
        """The recorder's status stream (SSE), opened: the caller reads and closes it."""
        return await self.open_stream("GET", self._device(device, "/events"), user_id)

    async def delete(self, user_id: str, recording_id: str) -> None:
        try:
            await self.request("DELETE", f"/recordings/{recording_id}", user_id)
        except WhispError as exc:
            if exc.status != 404:
                raise

    async def purge(self, user_id: str, before: datetime | None = None) -> AudioPurged:
        """The user's audio made before `before` (all of it, live recordings too, without)."""
        params = {"before": before.isoformat()} if before is not None else None
        response = await self.request("DELETE", AUDIO_PURGE_PATH, user_id, params=params)
        return AudioPurged.model_validate(response.json())


class AgentService(ServiceClient):
    def __init__(self, base_url: str, token: str | None) -> None:
        super().__init__(base_url, "agent", ErrorCode.AGENT_UNAVAILABLE, token)

    async def _listing(self, user_id: str) -> dict[str, set[str]]:
        found = (await self.request("GET", "/agents", user_id)).json()
        return {kind: {item["id"] for item in found.get(kind, [])} for kind in KINDS}

    async def names(self, user_id: str) -> set[str]:
        """Every agent and pipeline id the user may name (`agent_id`, `pipeline`)."""
        return set().union(*(await self._listing(user_id)).values())

    async def route_to(self, user_id: str, name: str) -> AgentRoute | None:
        """The route to the agent or pipeline called `name` (a user's `default_agent` names
        either), or None when the user may run neither by that name now."""
        listing = await self._listing(user_id)
        if name in listing["agents"]:
            return AgentRoute(agent_id=name)
        if name in listing["pipelines"]:
            return AgentRoute(pipeline=name)
        return None

    async def user_data(self, user_id: str) -> AgentData:
        response = await self.request("GET", AGENT_DATA_PATH, user_id)
        return AgentData.model_validate(response.json())

    async def delete_user_data(self, user_id: str) -> AgentDataDeleted:
        response = await self.request("DELETE", AGENT_DATA_PATH, user_id)
        return AgentDataDeleted.model_validate(response.json())
