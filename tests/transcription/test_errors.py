"""The service's error taxonomy: each class's stable code, and whether the bus retries it.

The code is what users and clients branch on and `retryable` is what decides between
another delivery and an immediate `TranscriptionFailed`, so both are pinned here per class
rather than only through the paths that happen to raise them.
"""

from __future__ import annotations

import pytest

from whisp_shared import upstream
from whisp_shared.errors import PermanentError, TransientError, WhispError
from whisp_transcription import errors

TAXONOMY: list[tuple[type[WhispError], str, type[WhispError]]] = [
    (errors.BadAudioUri, "bad_audio_uri", PermanentError),
    (errors.AudioNotFound, "audio_not_found", PermanentError),
    (errors.AudioUnavailable, "audio_unavailable", TransientError),
    (errors.AudioFetchRefused, "audio_fetch_refused", PermanentError),
    (errors.AudioTooLarge, "audio_too_large", PermanentError),
    (errors.ModelNotAvailable, "model_not_available", PermanentError),
    (errors.EngineNotConfigured, "engine_not_configured", PermanentError),
    (upstream.UpstreamUnavailable, "upstream_unavailable", TransientError),
    (upstream.UpstreamRateLimited, "upstream_rate_limited", TransientError),
    (upstream.UpstreamAuth, "upstream_auth", PermanentError),
    (upstream.UpstreamBadRequest, "upstream_bad_request", PermanentError),
    (upstream.UpstreamBadResponse, "upstream_bad_response", PermanentError),
]


@pytest.mark.parametrize(
    ("cls", "code", "kind"), TAXONOMY, ids=[c.__name__ for c, _, _ in TAXONOMY]
)
def test_each_error_has_its_code_and_retry_policy(
    cls: type[WhispError], code: str, kind: type[WhispError]
) -> None:
    error = cls("what went wrong")
    assert issubclass(cls, kind)
    assert error.code == code
    assert error.retryable is (kind is TransientError)
    failure = error.as_failure()
    assert (failure.code, failure.message, failure.retryable) == (
        code,
        "what went wrong",
        error.retryable,
    )


def test_every_error_class_is_covered() -> None:
    defined = {
        value
        for module in (errors, upstream)
        for value in vars(module).values()
        if isinstance(value, type)
        and issubclass(value, WhispError)
        and value.__module__ == module.__name__
    }
    assert defined == {cls for cls, _, _ in TAXONOMY}
