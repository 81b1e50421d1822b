"""The gateway's own refusals, one class per kind: each a shared `WhispError` whose code and
status are fixed here, once. Errors of the services behind the gateway pass through with
their own code (`clients.py`); the shared handler renders all of them alike (in OpenAI's
shape under `/v1`).
"""

from __future__ import annotations

from whisp_shared.codes import ErrorCode
from whisp_shared.errors import WhispError, not_found


def not_in_history(recording_id: str) -> WhispError:
    """Unknown and foreign ids alike: another user's recording is simply not in yours."""
    return not_found(f"no transcript {recording_id!r} in your history")


class UploadTooLarge(WhispError):
    code = ErrorCode.UPLOAD_TOO_LARGE
    status = 413


class EmptyUpload(WhispError):
    code = ErrorCode.EMPTY_UPLOAD
    status = 422


class BadCursor(WhispError):
    code = ErrorCode.BAD_CURSOR
    status = 400


class BadLastEventId(WhispError):
    code = ErrorCode.BAD_LAST_EVENT_ID
    status = 400


class RateLimited(WhispError):
    code = ErrorCode.RATE_LIMITED
    status = 429
    retryable = True


class QuotaExceeded(WhispError):
    """The owner's audio for today is used up (`quota.py`). Not `retryable`: a retry before
    `Retry-After` (the next UTC midnight) cannot help; `x-should-retry: false` tells
    OpenAI's SDKs so too, which would otherwise retry a 429 at once."""

    code = ErrorCode.QUOTA_EXCEEDED
    status = 429
    retryable = False


class TranscriptionTimeout(WhispError):
    """The recording is still queued or in work; it will reach the history regardless."""

    code = ErrorCode.TRANSCRIPTION_TIMEOUT
    status = 504
    retryable = True


class GatewayStopping(WhispError):
    code = ErrorCode.GATEWAY_STOPPING
    status = 503
    retryable = True
    retry_after = 1.0
