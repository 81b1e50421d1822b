"""The caller's own settings and data: read and change the settings, try replacements,
export everything of theirs, delete everything of theirs, see today's audio against the
daily quota.

Every route acts on the signed-in user only; nothing here takes a user id. The settings
shape is `whisp_shared.user_settings` (the page and the CLI use the same models).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from whisp_gateway.api.deps import AgentsDep, AudioDep, LimiterDep, QuotaDep, RepoDep
from whisp_gateway.api.responses import JSON_BODY, SIGNED_IN, errors
from whisp_gateway.auth import CurrentUser
from whisp_gateway.clients import AgentService
from whisp_gateway.my_data import export_lines, forget_everything
from whisp_shared.codes import ErrorCode
from whisp_shared.errors import WhispError
from whisp_shared.user_data import AudioUsage, DataDeleted
from whisp_shared.user_settings import (
    PreviewRequest,
    PreviewResult,
    UserSettings,
    UserSettingsPatch,
)

router = APIRouter(prefix="/api/me", tags=["me"], responses=errors(*SIGNED_IN))

SETTINGS_REFUSALS = errors(
    *JSON_BODY,
    502,
    503,
    notes={
        422: "`invalid_request`: an unknown field, a value of the wrong type (a number "
        "where text belongs), a list or text past its bound, two replacements for one "
        "phrase; or `unknown_agent`: `default_agent` names no agent or pipeline you may run",
        503: "`agent_unavailable`: a new `default_agent` could not be checked; retry",
    },
)
EXPORT = {
    "description": "Everything of yours as JSON Lines (a download), one object per line "
    "with a `type`: `export` (who, when), `settings`, one `transcript` per recording "
    "(final and raw text, segments, agent answers), `agent_session`, `agent_note`, "
    "`agent_usage`, and last `end` with the counts (an export without it was cut off)",
    "content": {
        "application/x-ndjson": {
            "itemSchema": {
                "type": "object",
                "required": ["type"],
                "properties": {
                    "type": {
                        "enum": [
                            "export",
                            "settings",
                            "transcript",
                            "agent_session",
                            "agent_note",
                            "agent_usage",
                            "end",
                        ]
                    }
                },
            }
        }
    },
}


class UnknownDefaultAgent(WhispError):
    code = ErrorCode.UNKNOWN_AGENT
    status = 422


class ConfirmationRequired(WhispError):
    code = ErrorCode.CONFIRMATION_REQUIRED
    status = 422


async def _check_agent(
    new: UserSettings, old: UserSettings, user_id: str, agents: AgentService
) -> None:
    """A new `default_agent` must be one the user may run now; an unchanged one is not
    asked about again (an agent removed later must not block saving the vocabulary)."""
    if new.default_agent is None or new.default_agent == old.default_agent:
        return
    if new.default_agent not in await agents.names(user_id):
        raise UnknownDefaultAgent(
            f"no agent or pipeline {new.default_agent!r} that you may run "
            "(GET /api/agents lists them)"
        )


@router.get("/settings")
async def get_settings(user: CurrentUser, repo: RepoDep) -> UserSettings:
    """Your settings (a new user's defaults until saved)."""
    return await repo.get_settings(user.id)


@router.put("/settings", responses=SETTINGS_REFUSALS)
async def put_settings(
    body: UserSettings, user: CurrentUser, repo: RepoDep, agents: AgentsDep
) -> UserSettings:
    """Replace your settings as a whole (a field left out gets its default). They apply
    to every recording you make from now on, on every path (uploads, `/v1`, streaming,
    Wyoming, device recordings). `default_agent` goes with a device recording or a Wyoming
    satellite that names no agent; uploads, `/v1` and the Realtime socket go to an agent
    only when their own request names one (the page and the CLI name your default)."""
    await _check_agent(body, await repo.get_settings(user.id), user.id, agents)
    return await repo.put_settings(user.id, body)


@router.patch("/settings", responses=SETTINGS_REFUSALS)
async def patch_settings(
    body: UserSettingsPatch, user: CurrentUser, repo: RepoDep, agents: AgentsDep
) -> UserSettings:
    """Change some settings: each field present replaces the stored one (a list as a
    whole; `null` unsets `default_agent`, `language` or a retention), the rest stay."""
    old = await repo.get_settings(user.id)
    new = old.patched(body)
    await _check_agent(new, old, user.id, agents)
    return await repo.put_settings(user.id, new)


@router.post(
    "/settings/preview",
    responses=errors(*JSON_BODY, notes={422: "`invalid_request`: a bad text or draft rule"}),
)
async def preview_replacements(
    body: PreviewRequest, user: CurrentUser, repo: RepoDep
) -> PreviewResult:
    """`text` with replacements applied as a transcript would get them: the draft
    `replacements` given here, else your saved ones. Nothing is stored."""
    rules = body.replacements
    if rules is None:
        rules = (await repo.get_settings(user.id)).replacements
    return PreviewResult.of(body.text, rules)


@router.get(
    "/export",
    response_class=StreamingResponse,
    responses={
        200: EXPORT,
        **errors(502, 503, notes={503: "`agent_unavailable`: retry; nothing was sent"}),
    },
)
async def export_my_data(user: CurrentUser, repo: RepoDep, agents: AgentsDep) -> StreamingResponse:
    """Everything the services keep for you, streamed (a long history is never built in
    memory): your settings, every transcript with its raw and final text and answers, and
    your agent sessions, notes and usage."""
    settings = await repo.get_settings(user.id)
    agent_data = await agents.user_data(user.id)
    return StreamingResponse(
        export_lines(user, settings, agent_data, repo),
        media_type="application/x-ndjson",
        headers={"Content-Disposition": 'attachment; filename="whisptt-my-data.jsonl"'},
    )


@router.delete(
    "/data",
    responses=errors(
        422,
        502,
        503,
        notes={
            422: "`confirmation_required`: `confirm` is missing or is not your user name "
            "(`invalid_request`: longer than a user name can be)",
            503: "`audio_unavailable` or `agent_unavailable`: retry (the gateway's own "
            "data is deleted only after both services deleted theirs)",
        },
    ),
)
async def delete_my_data(
    user: CurrentUser,
    repo: RepoDep,
    audio: AudioDep,
    agents: AgentsDep,
    limiter: LimiterDep,
    quota: QuotaDep,
    confirm: Annotated[
        str | None, Query(max_length=128, description="Your user name, to confirm")
    ] = None,
) -> DataDeleted:
    """Delete everything of yours, irreversibly: audio, transcripts and answers, settings,
    agent sessions, notes and usage, your rate-limit state and today's audio-quota count,
    and the stored events of your transcripts. Your account stays, so you can go on with
    nothing. Repeating it deletes nothing more and succeeds."""
    if confirm != user.name:
        raise ConfirmationRequired(
            f"this deletes everything of yours for good: repeat it with ?confirm={user.name}"
        )
    return await forget_everything(user.id, repo, audio, agents, limiter, quota)


@router.get("/usage")
async def get_usage(user: CurrentUser, quota: QuotaDep) -> AudioUsage:
    """Your audio today (the UTC day) against your daily quota: what every path (uploads,
    `/v1`, streaming, Wyoming) accepted, what is left, and when it starts again from 0.
    Once `remaining_s` is 0 your next recording is refused (429 `quota_exceeded`)."""
    return await quota.usage(user)
