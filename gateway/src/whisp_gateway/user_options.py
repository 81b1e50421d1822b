"""A user's settings resolved into the options of each recording they make.

Every door where the gateway accepts audio for a user (uploads, `/v1/audio/transcriptions`,
the Realtime socket, the Wyoming server) calls `options_for` (or `resolve_options` with
settings it already holds) once per recording, so the options the audio service and the
workers receive already carry that user's vocabulary, replacements, audio policy and
language: no other service ever looks settings up, and one user's settings never reach
another's recording.

`default_agent` is not resolved here on purpose: it is a client preference (the page
preselects it, the CLI and the Wyoming server use it when they name no agent). The gateway
never sends a recording to an agent its request did not ask for.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from whisp_gateway.repository import Repository
from whisp_shared.dictation import MAX_REPLACEMENTS, MAX_VOCABULARY, Replacement
from whisp_shared.options import RecordingOptions
from whisp_shared.user_settings import UserSettings, phrase_key, unique_terms

ResolveOptions = Callable[[RecordingOptions], Awaitable[RecordingOptions]]
"""`options_for` bound to one user (`functools.partial(options_for, repo, user_id)`)."""


def resolve_options(settings: UserSettings, options: RecordingOptions) -> RecordingOptions:
    """`options` as the request gave them, completed with the owner's `settings`.

    - vocabulary: the settings' terms, then any the request adds (each once, at most
      `MAX_VOCABULARY`); a request's `prompt` stays as it is, beside them (the worker
      decides how the two make the recogniser's prompt);
    - replacements: the settings' rules; a request's rule for the same spoken phrase wins
      (at most `MAX_REPLACEMENTS`);
    - keep_audio: kept only if both the settings and the request keep it (either may ask
      for the audio to go);
    - language: the request's, else the settings' fixed language, else detection.
    """
    vocabulary = unique_terms([*settings.vocabulary, *options.vocabulary])
    rules: dict[str, Replacement] = {}
    for rule in [*settings.replacements, *options.replacements]:
        rules[phrase_key(rule)] = rule
    return RecordingOptions.model_validate(
        {
            **options.options().model_dump(),
            "vocabulary": vocabulary[:MAX_VOCABULARY],
            "replacements": list(rules.values())[:MAX_REPLACEMENTS],
            "keep_audio": settings.keep_audio and options.keep_audio,
            "language": options.language or settings.language,
        }
    )


async def options_for(
    repo: Repository, user_id: str, options: RecordingOptions
) -> RecordingOptions:
    """`resolve_options` with the user's stored settings, read now (once per recording)."""
    return resolve_options(await repo.get_settings(user_id), options)
