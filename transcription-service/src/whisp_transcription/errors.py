"""The transcription service's failures: one class per code a user (or ops) can act on.

Fetching, model resolution and the engines raise these; the bus turns each into a
`TranscriptionFailed` carrying its code, and `retryable` decides between another delivery
(the audio service or the provider is down) and telling the user at once. The statuses are
what the error would answer with over HTTP (`whisp_shared.http_errors`), so the classes
mean the same here as in any other service.
"""

from __future__ import annotations

from whisp_shared.codes import ErrorCode
from whisp_shared.errors import PermanentError, TransientError

# -- the recording's audio ----------------------------------------------------------------


class BadAudioUri(PermanentError):
    """The event names audio this worker may not or cannot read (scheme, folder)."""

    code = ErrorCode.BAD_AUDIO_URI


class AudioNotFound(PermanentError):
    code = ErrorCode.AUDIO_NOT_FOUND
    status = 404


class AudioUnavailable(TransientError):
    """The audio service is down or overloaded: a later delivery may find it back."""

    code = ErrorCode.AUDIO_UNAVAILABLE


class AudioFetchRefused(PermanentError):
    """The audio service answered, but with a refusal a retry will not change (401, 403…)."""

    code = ErrorCode.AUDIO_FETCH_REFUSED
    status = 502


class AudioTooLarge(PermanentError):
    code = ErrorCode.AUDIO_TOO_LARGE
    status = 413


# -- the engine ---------------------------------------------------------------------------


class ModelNotAvailable(PermanentError):
    """The configured model cannot be found on this machine (and may not be downloaded)."""

    code = ErrorCode.MODEL_NOT_AVAILABLE
    status = 500


class EngineNotConfigured(PermanentError):
    """The chosen engine lacks what it needs to run (the openai engine's API key)."""

    code = ErrorCode.ENGINE_NOT_CONFIGURED
    status = 500
