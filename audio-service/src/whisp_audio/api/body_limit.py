"""Refuse oversized uploads while they stream in, with the shared JSON error body.

A declared Content-Length over the limit is answered at once, before a byte of the body
is read; a chunked body is cut off as soon as it passes the limit. (FastAPI's own
per-route `max_body_size` does the counting too, but answers a declared oversize with a
plain-text body.)
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from whisp_shared.codes import ErrorCode
from whisp_shared.http_errors import error_response


def too_large_message(limit: int) -> str:
    return (
        f"the upload is larger than the limit of {limit} bytes ({limit / 1024**2:.1f} MiB); "
        "it was refused before being read in full"
    )


class BodyTooLarge(HTTPException):
    """Raised from `receive` while FastAPI parses the form. An HTTPException (not a
    WhispError) because FastAPI re-raises only those from body parsing, turning anything
    else into a 400; the shared handler keeps its `code`."""

    code = ErrorCode.FILE_TOO_LARGE

    def __init__(self, limit: int) -> None:
        super().__init__(413, too_large_message(limit))


class UploadBodyLimit:
    """ASGI middleware limiting the body of `POST {path}` to `limit` bytes."""

    def __init__(self, app: ASGIApp, path: str, limit: int) -> None:
        self.app = app
        self.path = path
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != self.path:
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            response = error_response(
                413,
                ErrorCode.FILE_TOO_LARGE,
                too_large_message(self.limit),
                headers={"Connection": "close"},
            )
            await response(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLarge(self.limit)
            return message

        await self.app(scope, limited_receive, send)
