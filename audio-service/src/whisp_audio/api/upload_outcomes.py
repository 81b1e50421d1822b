"""Count every answer to `POST /recordings` by outcome and error code, as the client saw it.

A middleware rather than a hook in the error handlers: the shared handler set stays the
one and only renderer, and refusals made before any handler runs (the body limit's 413,
the token check's 401, a malformed form's 422) are counted like the rest. The code is read
from the shared error body itself, so the metric can never disagree with the answer.
"""

from __future__ import annotations

from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from whisp_audio import metrics
from whisp_shared.codes import ErrorCode
from whisp_shared.http_errors import STATUS_CODES, ErrorBody


def _code_of(status: int, body: bytes) -> ErrorCode:
    try:
        return ErrorBody.model_validate_json(body).code
    except ValidationError:
        return STATUS_CODES.get(status, ErrorCode.INTERNAL_ERROR)


class UploadOutcomes:
    """ASGI middleware: `whisp_audio_uploads_total{outcome, code}` for `POST {path}`."""

    def __init__(self, app: ASGIApp, path: str) -> None:
        self.app = app
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != self.path:
            await self.app(scope, receive, send)
            return
        status = 0
        error_body = bytearray()  # only a refusal's (small) body is kept

        async def watched_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and status >= 400:
                error_body.extend(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, watched_send)
        except Exception:
            # Escaping to the server-error handler outside this middleware: a 500.
            metrics.UPLOADS.labels("refused", ErrorCode.INTERNAL_ERROR).inc()
            raise
        if status < 400:
            metrics.UPLOADS.labels("accepted", "").inc()
        else:
            metrics.UPLOADS.labels("refused", _code_of(status, bytes(error_body))).inc()
