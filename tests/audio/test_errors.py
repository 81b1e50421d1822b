"""Every non-2xx answer of the audio service is the one shared error body,
`{code, message, retryable}`: routing errors, validation errors, the service's own
refusals and an unexpected failure alike (`whisp_audio.errors`, rendered by the shared
handler set that `create_app` installs)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from tests.audio.conftest import BASE_URL
from whisp_audio.app import create_app
from whisp_audio.settings import AudioSettings
from whisp_recorder import AudioSource
from whisp_shared.bus import EventBus
from whisp_shared.codes import ErrorCode
from whisp_shared.config import BusSettings


def broken_device(device: str | int | None) -> AudioSource:
    """A source factory with a bug in it: the one way to make the service fail unexpectedly
    without patching its code."""
    raise ZeroDivisionError(f"no source for {device!r}")


@asynccontextmanager
async def client(bus_settings: BusSettings, data_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(
        AudioSettings(data_dir=data_dir, public_url=BASE_URL),
        EventBus(bus_settings),
        source_factory=broken_device,
    )
    # raise_app_exceptions=False: see the 500 the client gets, not the server's traceback.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http,
    ):
        yield http


def assert_error_body(response: httpx.Response, status: int, code: ErrorCode) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"code", "message", "retryable"}, body
    assert body["code"] == code
    assert isinstance(body["retryable"], bool)
    assert body["message"] and body["message"] != code.value
    return body


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "code", "words"),
    [
        ("GET", "/no/such/route", {}, 404, ErrorCode.NOT_FOUND, "no such resource"),
        ("DELETE", "/devices", {}, 405, ErrorCode.METHOD_NOT_ALLOWED, "Method Not Allowed"),
        ("POST", "/devices/mic/recording", {"content": b"{not json",
         "headers": {"Content-Type": "application/json"}}, 422, ErrorCode.INVALID_REQUEST,
         "JSON"),
        ("POST", "/devices/mic/recording", {"json": {"language": 7}}, 422,
         ErrorCode.INVALID_REQUEST, "field 'language'"),
        ("GET", "/audio/x", {"headers": {"X-Whisp-User": "no spaces allowed"}}, 422,
         ErrorCode.INVALID_REQUEST, "header 'x-whisp-user'"),
        ("POST", "/recordings", {"content": b"just bytes"}, 422, ErrorCode.INVALID_REQUEST,
         "field 'file' is required"),
        ("POST", "/devices/mic/recording/stop", {}, 409, ErrorCode.NOT_RECORDING,
         "no recording on 'mic' to stop"),
        ("GET", "/recordings/" + "0" * 32, {}, 404, ErrorCode.NOT_FOUND, "no recording"),
    ],
    ids=["unknown-route", "wrong-method", "bad-json", "bad-field", "bad-header",
         "no-file", "refusal", "unknown-id"],
)  # fmt: skip
async def test_bad_requests_get_the_shared_error_body(
    bus_settings: BusSettings,
    data_dir: Path,
    method: str,
    path: str,
    kwargs: dict,
    status: int,
    code: ErrorCode,
    words: str,
) -> None:
    async with client(bus_settings, data_dir) as http:
        response = await http.request(method, path, **kwargs)
    body = assert_error_body(response, status, code)
    assert words in body["message"], body
    assert body["retryable"] is False


async def test_an_unexpected_failure_is_a_json_500_that_says_nothing_internal(
    bus_settings: BusSettings, data_dir: Path
) -> None:
    async with client(bus_settings, data_dir) as http:
        response = await http.post("/devices/mic/recording")
    body = assert_error_body(response, 500, ErrorCode.INTERNAL_ERROR)
    assert "ZeroDivisionError" not in response.text and "no source for" not in response.text
    assert body["retryable"] is False
