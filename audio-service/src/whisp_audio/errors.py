"""The audio service's refusals, one class per kind: each is a shared `WhispError` whose code
(from `ErrorCode`) and status are fixed here, once.

The domain (upload checks, ingest, device recordings) raises them by name and never spells
an HTTP status; the shared handler (`whisp_shared.http_errors`) renders every one as the
same `{code, message, retryable}` body. The recorder's own `InvalidTransition` works the
same way.
"""

from __future__ import annotations

from whisp_shared.codes import ErrorCode
from whisp_shared.errors import WhispError, not_found


def recording_not_found() -> WhispError:
    """Unknown, malformed and foreign ids alike, so ids cannot be probed."""
    return not_found("no recording with this id")


class AudioDeleted(WhispError):
    """The recording exists (for its owner) but its audio was deleted once transcribed, as
    the owner's `keep_audio: false` asks: a distinct code, so nobody retries or reports it."""

    code = ErrorCode.AUDIO_NOT_FOUND
    status = 404


# -- uploads ----------------------------------------------------------------------------


class FileTooLarge(WhispError):
    code = ErrorCode.FILE_TOO_LARGE
    status = 413


class AudioTooLong(WhispError):
    code = ErrorCode.AUDIO_TOO_LONG
    status = 413


class UnsupportedMediaType(WhispError):
    code = ErrorCode.UNSUPPORTED_MEDIA_TYPE
    status = 415


class UndecodableAudio(WhispError):
    """Empty, corrupt or truncated: the bytes look like a format we take but hold no audio."""

    code = ErrorCode.UNDECODABLE_AUDIO
    status = 422


class BusUnavailable(WhispError):
    """Nothing was kept: the client may simply send the same recording again."""

    code = ErrorCode.UNAVAILABLE
    status = 503
    retryable = True
    retry_after = 5.0


# -- device recordings ------------------------------------------------------------------


class NotRecording(WhispError):
    """Stop or cancel with nothing to stop or cancel."""

    code = ErrorCode.NOT_RECORDING
    status = 409


class AlreadyRecording(WhispError):
    """Start while this caller's recorder on that device is busy: starting is not a legal
    move from its state, hence the recorder's own code."""

    code = ErrorCode.INVALID_TRANSITION
    status = 409


class EmptyRecording(WhispError):
    code = ErrorCode.EMPTY_RECORDING
    status = 422


class UnknownDevice(WhispError):
    code = ErrorCode.UNKNOWN_DEVICE
    status = 404


class DeviceUnavailable(WhispError):
    """The device exists but would not open (busy, or its audio server is down)."""

    code = ErrorCode.DEVICE_UNAVAILABLE
    status = 503
    retryable = True


# -- live recordings --------------------------------------------------------------------


class RecordingEnded(WhispError):
    """Audio, a commit or a cancel for a live recording that was already ended otherwise."""

    code = ErrorCode.RECORDING_ENDED
    status = 409


class MaxDurationReached(WhispError):
    """The live recording reached its maximum length and was committed there."""

    code = ErrorCode.MAX_DURATION_REACHED
    status = 409


class ChunkTooLarge(WhispError):
    code = ErrorCode.CHUNK_TOO_LARGE
    status = 413


class BadAudioChunk(WhispError):
    """Not whole PCM16 samples: an odd number of bytes."""

    code = ErrorCode.BAD_AUDIO_CHUNK
    status = 422


class Busy(WhispError):
    """Other calls kept changing the recording under this one (appends sent in parallel)."""

    code = ErrorCode.CONFLICT
    status = 409
    retryable = True
