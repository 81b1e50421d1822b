"""Every error leaves as JSON `{"code": ..., "message": ...}` with the right status.

Handlers cover our own ApiError, the recorder's InvalidTransition (409), Starlette's
HTTPException (routing 404/405, the body limit's 413, auth's 401) and FastAPI's request
validation (422, with a message naming each bad field instead of a raw error list).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from whisp_audio import metrics
from whisp_audio.errors import ApiError
from whisp_audio.recorder.machine import InvalidTransition

DEFAULT_CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}
UPLOAD_PATH = "/recordings"
_WHERE = {"body": "field", "query": "query parameter", "header": "header", "path": "path part"}


def error_response(
    status_code: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"code": code, "message": message}, status_code=status_code, headers=headers
    )


def describe_validation(errors: Sequence[Any]) -> str:
    """'field 'language': String should match pattern ...; header 'x-whisp-user': ...'."""
    parts = []
    for error in errors:
        loc = [str(p) for p in error.get("loc", ())]
        where = _WHERE.get(loc[0], loc[0]) if loc else "request"
        name = ".".join(loc[1:]) or "body"
        message = str(error.get("msg", "is invalid"))
        if error.get("type") == "missing":
            message = "is required"
        parts.append(f"{where} '{name}' {message}" if message == "is required" else
                     f"{where} '{name}': {message}")  # fmt: skip
    return "; ".join(parts) or "the request is invalid"


def _count_refused_upload(request: Request, code: str) -> None:
    if request.method == "POST" and request.url.path == UPLOAD_PATH:
        metrics.UPLOADS.labels("refused", code).inc()


def install_error_handlers(app: FastAPI) -> None:
    async def on_api_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        _count_refused_upload(request, exc.code)
        return error_response(exc.status_code, exc.code, exc.message, exc.headers)

    async def on_transition(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, InvalidTransition)
        return error_response(409, exc.code, exc.message)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        detail = exc.detail
        status_code = exc.status_code
        if isinstance(detail, dict) and {"code", "message"} <= detail.keys():
            code, message = str(detail["code"]), str(detail["message"])
        elif isinstance(getattr(exc, "code", None), str):
            code, message = str(getattr(exc, "code")), str(detail)  # noqa: B009
        else:
            code = DEFAULT_CODES.get(status_code, f"http_{status_code}")
            message = str(detail) if detail else code.replace("_", " ")
        if status_code == 404 and code == "not_found" and message == "Not Found":
            message = "no such resource"
        _count_refused_upload(request, code)
        return error_response(status_code, code, message, exc.headers)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        _count_refused_upload(request, "invalid_request")
        return error_response(422, "invalid_request", describe_validation(exc.errors()))

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(InvalidTransition, on_transition)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_validation)
