"""HTTP clients for the services behind the gateway.

The gateway authenticates people; downstream it speaks for them with the service
token and the `X-Whisp-User` header. Upstream errors keep their `code` and `message`
(a 413 from the audio service stays a 413 for the browser); an unreachable service
becomes 503 with a code the page can explain.
"""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import HTTPException
from pydantic import BaseModel

from whisp_shared.http_errors import http_error


class SubmitOptions(BaseModel):
    agent_id: str | None = None
    pipeline: str | None = None
    session_id: str | None = None
    language: str | None = None
    prompt: str | None = None
    word_timestamps: bool = False


class Submitted(BaseModel):
    recording_id: str
    duration_s: float | None = None


class Upstream:
    def __init__(self, base_url: str, name: str, token: str | None, timeout_s: float = 60):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.name = name
        self.client = httpx.AsyncClient(base_url=base_url, headers=headers, timeout=timeout_s)

    async def aclose(self) -> None:
        await self.client.aclose()

    async def request(self, method: str, path: str, user_id: str, **kwargs: Any) -> httpx.Response:
        headers = {"X-Whisp-User": user_id, **kwargs.pop("headers", {})}
        try:
            response = await self.client.request(method, path, headers=headers, **kwargs)
        except httpx.TransportError as exc:
            raise http_error(
                503, f"{self.name}_unavailable", f"the {self.name} service cannot be reached"
            ) from exc
        if response.status_code >= 400:
            raise self._error(response)
        return response

    async def open_stream(
        self, method: str, path: str, user_id: str, **kwargs: Any
    ) -> httpx.Response:
        """Start a streamed request; errors before the first byte keep their status."""
        headers = {"X-Whisp-User": user_id, **kwargs.pop("headers", {})}
        request = self.client.build_request(method, path, headers=headers, **kwargs)
        try:
            response = await self.client.send(request, stream=True)
        except httpx.TransportError as exc:
            raise http_error(
                503, f"{self.name}_unavailable", f"the {self.name} service cannot be reached"
            ) from exc
        if response.status_code >= 400:
            await response.aread()
            await response.aclose()
            raise self._error(response)
        return response

    def _error(self, response: httpx.Response) -> HTTPException:
        try:
            body = response.json()
            code, message = str(body["code"]), str(body["message"])
        except (ValueError, KeyError, TypeError):
            code = f"{self.name}_error"
            message = f"the {self.name} service answered {response.status_code}"
        status = response.status_code if response.status_code < 500 else 502
        if response.status_code in (502, 503, 504):
            status = response.status_code
        headers = (
            {"Retry-After": response.headers["Retry-After"]}
            if ("Retry-After" in response.headers)
            else None
        )
        return http_error(status, code, message, headers)


class AudioService(Upstream):
    def __init__(self, base_url: str, token: str | None) -> None:
        super().__init__(base_url, "audio", token)

    async def submit(
        self, user_id: str, data: bytes, filename: str, content_type: str, options: SubmitOptions
    ) -> Submitted:
        form = {
            k: str(v).lower() if isinstance(v, bool) else v
            for k, v in options.model_dump(exclude_none=True).items()
        }
        response = await self.request(
            "POST",
            "/recordings",
            user_id,
            files={"file": (filename, data, content_type)},
            data=form,
        )
        return Submitted.model_validate(response.json())

    async def delete(self, user_id: str, recording_id: str) -> None:
        try:
            await self.request("DELETE", f"/recordings/{recording_id}", user_id)
        except HTTPException as exc:
            if exc.status_code != 404:
                raise
