"""One JSON error shape for every service: `{"code", "message", "retryable"}` + the right status.

Clients (the web page, the CLI, other services) branch on `code`, show `message`, and
honour `Retry-After` when present. Under an OpenAI-compatible prefix (the gateway's `/v1`)
the same error is rendered in OpenAI's `{"error": {...}}` shape, so SDKs raise their usual
exceptions. Every service installs exactly this handler set; nothing answers a plain-text
500.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from whisp_shared.codes import ErrorCode
from whisp_shared.errors import WhispError
from whisp_shared.logs import get_logger

log = get_logger(__name__)

STATUS_CODES: dict[int, ErrorCode] = {
    400: ErrorCode.BAD_REQUEST,
    401: ErrorCode.UNAUTHORIZED,
    403: ErrorCode.FORBIDDEN,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    409: ErrorCode.CONFLICT,
    413: ErrorCode.FILE_TOO_LARGE,
    415: ErrorCode.UNSUPPORTED_MEDIA_TYPE,
    422: ErrorCode.INVALID_REQUEST,
    429: ErrorCode.RATE_LIMITED,
    500: ErrorCode.INTERNAL_ERROR,
    503: ErrorCode.UNAVAILABLE,
}
"""The code for an error that did not name one (routing 404/405, Starlette's own)."""

UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (RedisConnectionError, RedisTimeoutError)
"""Redis away (killed, restarting, partitioned): every route answers 503 + Retry-After, so
a client retries instead of giving up on a 500. A service names its own (the gateway's
database) in `install_error_handlers(unavailable=...)`."""
UNAVAILABLE_RETRY_AFTER_S = 2

_WHERE = {"body": "field", "query": "query parameter", "header": "header", "path": "path part"}


class ErrorBody(BaseModel):
    """What every non-2xx answer of every service carries (outside `/v1`)."""

    code: ErrorCode
    message: str
    retryable: bool = False


class OpenAIErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: ErrorCode


class OpenAIErrorBody(BaseModel):
    """The same error under an OpenAI-compatible prefix."""

    error: OpenAIErrorDetail


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": ErrorBody, "description": "A refusal with a stable code"},
    "5XX": {"model": ErrorBody, "description": "A failure behind the service"},
}
"""For `APIRouter(responses=...)`: documents the error body on every route."""


def error_body(code: ErrorCode, message: str, *, retryable: bool = False) -> dict[str, Any]:
    return ErrorBody(code=code, message=message, retryable=retryable).model_dump(mode="json")


def error_response(
    status: int,
    code: ErrorCode,
    message: str,
    *,
    retryable: bool | None = None,
    headers: dict[str, str] | None = None,
    openai: bool = False,
) -> JSONResponse:
    """The JSON answer for one error; `retryable` defaults to what the status implies."""
    again = retryable if retryable is not None else status in (429, 502, 503, 504)
    if openai:
        kind = "invalid_request_error" if status < 500 else "server_error"
        body: dict[str, Any] = OpenAIErrorBody(
            error=OpenAIErrorDetail(message=message, type=kind, code=code)
        ).model_dump(mode="json")
    else:
        body = error_body(code, message, retryable=again)
    return JSONResponse(body, status_code=status, headers=headers)


def describe_validation(errors: Sequence[Any]) -> str:
    """ "field 'language': String should match pattern ...; header 'x-whisp-user' is required"."""
    parts = []
    for error in list(errors)[:8]:
        loc = [str(p) for p in error.get("loc", ())]
        where = _WHERE.get(loc[0], loc[0]) if loc else "request"
        name = ".".join(loc[1:]) or "body"
        if error.get("type") == "missing":
            parts.append(f"{where} '{name}' is required")
        else:
            parts.append(f"{where} '{name}': {error.get('msg', 'is invalid')}")
    return "; ".join(parts) or "the request is invalid"


def _code_of(value: object, status: int) -> ErrorCode:
    try:
        return ErrorCode(str(value))
    except ValueError:
        return STATUS_CODES.get(status, ErrorCode.INTERNAL_ERROR if status >= 500 else
                                ErrorCode.BAD_REQUEST)  # fmt: skip


def install_error_handlers(
    app: FastAPI,
    *,
    openai_prefix: str | None = None,
    unavailable: tuple[type[Exception], ...] = (),
) -> None:
    """Render WhispError, Starlette's HTTPException, validation errors, a dependency that
    cannot be reached (Redis, plus the service's own `unavailable` ones: 503) and anything
    unexpected (500) as one JSON body (OpenAI-shaped under `openai_prefix`)."""

    def shaped(request: Request) -> bool:
        return openai_prefix is not None and request.url.path.startswith(openai_prefix)

    async def on_whisp(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, WhispError)
        return error_response(
            exc.status,
            exc.code,
            exc.message,
            retryable=exc.retryable,
            headers=exc.headers(),
            openai=shaped(request),
        )

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = _code_of(getattr(exc, "code", None), exc.status_code)
        message = str(exc.detail) if exc.detail else code.value.replace("_", " ")
        if exc.status_code == 404 and message == "Not Found":
            message = "no such resource"
        return error_response(
            exc.status_code, code, message, headers=dict(exc.headers or {}), openai=shaped(request)
        )

    async def on_invalid(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return error_response(
            422,
            ErrorCode.INVALID_REQUEST,
            describe_validation(exc.errors()),
            openai=shaped(request),
        )

    async def on_unavailable(request: Request, exc: Exception) -> JSONResponse:
        log.warning("a dependency is unreachable", path=request.url.path, error=repr(exc))
        return error_response(
            503,
            ErrorCode.UNAVAILABLE,
            "a service this request needs is unreachable for the moment; try again shortly",
            retryable=True,
            headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER_S)},
            openai=shaped(request),
        )

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", path=request.url.path)
        return error_response(
            500,
            ErrorCode.INTERNAL_ERROR,
            "something went wrong on our side; it has been logged",
            openai=shaped(request),
        )

    app.add_exception_handler(WhispError, on_whisp)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_invalid)
    for kind in (*UNAVAILABLE_ERRORS, *unavailable):
        app.add_exception_handler(kind, on_unavailable)
    app.add_exception_handler(Exception, on_unexpected)
