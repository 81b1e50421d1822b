"""One JSON error shape for every service: `{"code": ..., "message": ...}` + the right status.

Clients (the web page, the CLI, other services) branch on `code`, show `message`, and
honour `Retry-After` when present.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from whisp_shared.errors import WhispError


class ErrorBody(BaseModel):
    code: str
    message: str


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        ErrorBody(code=code, message=message).model_dump(), status_code=status, headers=headers
    )


def http_error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> HTTPException:
    return HTTPException(status, detail={"code": code, "message": message}, headers=headers)


def _describe(errors: list[Any]) -> str:
    parts = []
    for err in errors[:5]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query"))
        parts.append(f"{where}: {err.get('msg', 'invalid')}" if where else err.get("msg", ""))
    return "; ".join(parts) or "the request is not valid"


def install_error_handlers(app: FastAPI, status_for: dict[str, int] | None = None) -> None:
    """Render HTTPException, validation errors and WhispError as ErrorBody JSON."""
    statuses = status_for or {}

    @app.exception_handler(HTTPException)
    async def _http(_request: Request, exc: HTTPException) -> JSONResponse:
        detail = exc.detail
        if isinstance(detail, dict) and {"code", "message"} <= detail.keys():
            code, message = str(detail["code"]), str(detail["message"])
        else:
            code, message = f"http_{exc.status_code}", str(detail)
        return error_response(exc.status_code, code, message, dict(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, "invalid_request", _describe(list(exc.errors())))

    @app.exception_handler(WhispError)
    async def _whisp(_request: Request, exc: WhispError) -> JSONResponse:
        status = statuses.get(exc.code, 503 if exc.retryable else 400)
        return error_response(status, exc.code, exc.message)
