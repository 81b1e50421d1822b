"""Errors with a stable `code`, a message a person can act on, and whether a retry may help."""

from __future__ import annotations

from whisp_shared.events import FailureFields


class WhispError(Exception):
    """Base for failures that reach users as failure events or JSON error bodies."""

    code: str = "internal_error"
    retryable: bool = False

    def __init__(self, message: str, *, code: str | None = None, retryable: bool | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if retryable is not None:
            self.retryable = retryable

    def as_failure(self) -> FailureFields:
        return FailureFields(code=self.code, message=self.message, retryable=self.retryable)


class TransientError(WhispError):
    """Worth another delivery: the bus leaves the entry pending for a peer to retry."""

    code = "transient_error"
    retryable = True


class PermanentError(WhispError):
    """Retrying cannot help (bad input, bad credentials): fail at once."""

    code = "permanent_error"
    retryable = False
