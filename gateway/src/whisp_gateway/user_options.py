"""A user's settings resolved into the options of each recording they make.

Every door where the gateway accepts audio for a user (uploads, `/v1/audio/transcriptions`,
the Realtime socket, device recordings, the Wyoming server) calls `options_for` (or
`resolve_options` with settings it already holds) once per recording, so the options the
audio service and the workers receive already carry that user's vocabulary, replacements,
audio policy and language: no other service ever looks settings up, and one user's
settings never reach another's recording.

`default_agent` is not part of the options: who applies it depends on the door. An upload
(`api/recordings.py`), `/v1` and the Realtime socket go to the agent their request names,
or to none: the page preselects the default in its "Send to" and names it on the upload,
`whisp record` and `whisp hotkey` name it on every request. The two doors with no client
to do that call `default_route` when their request names no agent: a recording from a
microphone on the audio service's machine (`api/devices.py`) and a Wyoming satellite with
no agent of its own (`wyoming/access.py`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from whisp_gateway.clients import AgentService
from whisp_gateway.repository import Repository
from whisp_shared.dictation import MAX_REPLACEMENTS, MAX_VOCABULARY, Replacement
from whisp_shared.errors import WhispError
from whisp_shared.logs import get_logger
from whisp_shared.options import AgentRoute, RecordingOptions
from whisp_shared.user_settings import UserSettings, phrase_key, unique_terms

log = get_logger(__name__)

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


async def default_route(agents: AgentService, user_id: str, name: str | None) -> AgentRoute:
    """The route to the user's `default_agent` (`name`), if they may still run it, else
    none. When the agent service cannot say, none too: speech-to-text must not fail for
    want of an answer about an agent the request did not name."""
    if name is None:
        return AgentRoute()
    try:
        route = await agents.route_to(user_id, name)
    except WhispError as exc:
        log.warning("default agent not checked, none used", user_id=user_id, error=exc.message)
        return AgentRoute()
    if route is None:
        log.warning("the user's default agent is not available", user_id=user_id, agent=name)
    return route or AgentRoute()
