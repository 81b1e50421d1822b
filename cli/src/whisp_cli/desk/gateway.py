"""Talking to the gateway over HTTP: upload a clip, and errors a person can act on.

Every failure becomes a `GatewayError` whose message says what to do next (start the
stack, set a token, wait N seconds), because the CLI's user is mid-sentence and should
not have to read a traceback.
"""

from __future__ import annotations

import json

import httpx

from whisp_shared.caller import bearer
from whisp_shared.codes import ErrorCode
from whisp_shared.options import RecordingOptions
from whisp_shared.user_settings import UserSettings

AUTH_HINT = "set WHISP_TOKEN (or WHISP_CLI__TOKEN) to an API token from `whisp users add`"


class GatewayError(Exception):
    """A request to the gateway failed; `str()` is the message to show."""

    def __init__(
        self, message: str, *, status: int | None = None, code: str = ErrorCode.UNAVAILABLE
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def auth_headers(token: str | None) -> dict[str, str]:
    """A user's API token (from `whisp users add`), not the services' token."""
    return {"Authorization": bearer(token)} if token else {}


def unreachable(url: str, exc: Exception) -> GatewayError:
    return GatewayError(
        f"cannot reach the gateway at {url} ({type(exc).__name__}). Is the stack running? "
        "Start it with `whisp up`, or point the CLI elsewhere with --url / cli.gateway_url.",
        code=ErrorCode.GATEWAY_UNREACHABLE,
    )


def error_from(response: httpx.Response) -> GatewayError:
    """Map a 4xx/5xx answer to a message; the gateway's JSON `code`/`message` win."""
    try:
        body = json.loads(response.read() or b"{}")
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    code = str(body.get("code") or ErrorCode.UNAVAILABLE)
    message = str(body.get("message") or response.reason_phrase or "request failed")
    status = response.status_code
    if status == 401:
        message = f"the gateway wants an API token ({message}); {AUTH_HINT}"
    elif status == 403:
        message = f"not allowed: {message}"
    elif code == ErrorCode.QUOTA_EXCEEDED:  # the message says when it resets (not "N s")
        message = f"your daily audio quota is used up: {message}"
    elif status == 429:
        retry = response.headers.get("Retry-After")
        wait = f"try again in {retry} s" if retry else "wait a little and try again"
        said = "" if "try again" in message.lower() else f"; {wait}"  # no echo of the server
        message = f"the gateway is rate-limiting you: {message}{said}"
    elif status >= 500:
        message = f"the gateway reported a server problem: {message} (HTTP {status})"
    return GatewayError(message, status=status, code=code)


class GatewayClient:
    """Synchronous client: the desk tools run uploads on worker threads, not an event loop."""

    def __init__(self, base_url: str, token: str | None, timeout_s: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=auth_headers(token),
            timeout=httpx.Timeout(timeout_s, connect=5.0),
        )

    def close(self) -> None:
        self._http.close()

    def submit(self, wav: bytes, options: RecordingOptions) -> str:
        """Upload one WAV clip; returns its `recording_id`."""
        try:
            response = self._http.post(
                "/api/recordings",
                files={"file": ("recording.wav", wav, "audio/wav")},
                data=options.as_form(),
            )
        except httpx.TransportError as exc:
            raise unreachable(self.base_url, exc) from exc
        if response.status_code >= 400:
            raise error_from(response)
        try:
            return str(response.json()["recording_id"])
        except (ValueError, KeyError, TypeError) as exc:
            raise GatewayError(
                f"the gateway answered the upload without a recording id: {response.text[:200]}"
            ) from exc

    def my_settings(self) -> UserSettings:
        """The caller's saved settings (`GET /api/me/settings`)."""
        try:
            response = self._http.get("/api/me/settings")
        except httpx.TransportError as exc:
            raise unreachable(self.base_url, exc) from exc
        if response.status_code >= 400:
            raise error_from(response)
        try:
            return UserSettings.model_validate_json(response.content)
        except ValueError as exc:
            raise GatewayError(f"the gateway sent settings this CLI cannot read: {exc}") from exc
