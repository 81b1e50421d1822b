"""One error type for every service: a stable `code`, a message a person can act on, the HTTP
status it answers with, and whether a retry may help.

Free of any web framework, so domain code (ingest, engines, agent runs) raises it and only
the HTTP layer (`whisp_shared.http_errors`) renders it; the bus turns the same error into
a failure event (`as_failure`), so a refusal reads the same on REST and on the stream.
"""

from __future__ import annotations

import math

from whisp_shared.codes import ErrorCode
from whisp_shared.events import FailureFields


class WhispError(Exception):
    """Base for failures that reach users as failure events or JSON error bodies.

    Subclasses set class defaults (`code`, `status`, `retryable`); any of them can be
    overridden per instance.
    """

    code: ErrorCode = ErrorCode.INTERNAL_ERROR
    status: int = 500
    retryable: bool = False
    retry_after: float | None = None
    """Seconds a client should wait before trying again (sent as `Retry-After`)."""

    def __init__(
        self,
        message: str,
        *,
        code: ErrorCode | None = None,
        status: int | None = None,
        retryable: bool | None = None,
        retry_after: float | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        if retryable is not None:
            self.retryable = retryable
        if retry_after is not None:
            self.retry_after = retry_after
        self.extra_headers = dict(headers or {})

    def headers(self) -> dict[str, str]:
        """What the HTTP answer carries besides the body (`Retry-After` when known)."""
        out = dict(self.extra_headers)
        if self.retry_after is not None:
            out["Retry-After"] = str(max(1, math.ceil(self.retry_after)))
        return out

    def as_failure(self) -> FailureFields:
        return FailureFields(code=self.code, message=self.message, retryable=self.retryable)


class TransientError(WhispError):
    """Worth another delivery: the bus leaves the entry pending for a peer to retry."""

    code = ErrorCode.TRANSIENT_ERROR
    status = 503
    retryable = True


class PermanentError(WhispError):
    """Retrying cannot help (bad input, bad credentials): fail at once."""

    code = ErrorCode.PERMANENT_ERROR
    status = 400
    retryable = False


def not_found(message: str = "no such resource") -> WhispError:
    """One answer for unknown and foreign ids alike, so ids cannot be probed."""
    return WhispError(message, code=ErrorCode.NOT_FOUND, status=404)


def unauthorized(message: str) -> WhispError:
    return WhispError(
        message,
        code=ErrorCode.UNAUTHORIZED,
        status=401,
        headers={"WWW-Authenticate": "Bearer"},
    )
