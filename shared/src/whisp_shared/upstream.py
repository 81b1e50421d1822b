"""Failures of a model provider (OpenAI or any compatible server), the same for every
service that calls one: the transcription engine and the agent runs.

Retryable ones (unavailable, rate-limited) leave bus entries pending for another try; the
others fail at once, since only ops can fix a key or a model name.
"""

from __future__ import annotations

from whisp_shared.codes import ErrorCode
from whisp_shared.errors import PermanentError, TransientError

MESSAGE_CHARS = 300


class UpstreamUnavailable(TransientError):
    """The provider is down, timed out or answered 5xx."""

    code = ErrorCode.UPSTREAM_UNAVAILABLE


class UpstreamRateLimited(TransientError):
    code = ErrorCode.UPSTREAM_RATE_LIMITED
    status = 429


class UpstreamAuth(PermanentError):
    """The provider refused the API key."""

    code = ErrorCode.UPSTREAM_AUTH
    status = 502


class UpstreamBadRequest(PermanentError):
    """The provider refused the request itself (unknown model, bad parameter)."""

    code = ErrorCode.UPSTREAM_BAD_REQUEST
    status = 502


class UpstreamBadResponse(PermanentError):
    """The provider answered with something that cannot be used."""

    code = ErrorCode.UPSTREAM_BAD_RESPONSE
    status = 502


def server_message(body: object, fallback: str) -> str:
    """What the provider said: OpenAI's `{"message": ...}` (the SDK unwraps `error`), else
    the body itself, cut short so a provider's HTML page cannot flood a log or a user."""
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])[:MESSAGE_CHARS]
    return (str(body) if body else fallback)[:MESSAGE_CHARS]
