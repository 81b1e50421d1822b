"""Everything of one user's, across the services: exported as one JSONL stream, or deleted.

The gateway holds the account, the settings and the transcript history (with each
transcript's raw and final text and its agent answers); the audio service holds the audio
and the agent service the agent sessions, notes and usage rows (`whisp_shared.user_data`).
Both operations ask the others for that one user only (the caller header), never for
anyone else.

Deleting goes outside in: the audio first, then the agent data, then the gateway's rows and
Redis keys. If a service is away (503) the request fails before the gateway forgets
anything, so a retry finishes the job; every step is idempotent, so a repeat deletes
nothing more and succeeds. The Redis keys include the daily audio-quota counters, so
the quota starts again from 0 with the history. The account stays (the user can log in
and start again with nothing); removing it is an admin's `whisp users remove`.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, cast

from pydantic import BaseModel, Field
from redis.asyncio import Redis

from whisp_gateway.clients import AgentService, AudioService
from whisp_gateway.quota import Quota
from whisp_gateway.ratelimit import RateLimiter
from whisp_gateway.repository import Repository
from whisp_gateway.repository.models import TranscriptQuery, User
from whisp_shared.codec import DATA_FIELD
from whisp_shared.streams import USER_EVENTS
from whisp_shared.tail import RawEntry
from whisp_shared.user_data import (
    AgentData,
    DataDeleted,
    ExportFinished,
    RedisForgotten,
)
from whisp_shared.user_settings import UserSettings
from whisp_shared.views import Transcript

EXPORT_VERSION = 1
SCAN_BATCH = 1000
GLOB_SPECIAL = re.compile(r"([\[\]*?\\])")


class ExportStarted(BaseModel):
    """The first line: whose export it is and when it was made."""

    type: Literal["export"] = "export"
    version: int = EXPORT_VERSION
    user: User
    exported_at: datetime


class SettingsLine(BaseModel):
    type: Literal["settings"] = "settings"
    settings: UserSettings


class TranscriptLine(BaseModel):
    """One recording as the history shows it: final and raw text, segments, answers."""

    type: Literal["transcript"] = "transcript"
    transcript: Transcript


AgentKind = Literal["agent_session", "agent_note", "agent_usage"]


class AgentLine(BaseModel):
    """One thing the agent service keeps for the user, as it exports it."""

    type: AgentKind
    data: dict[str, Any]


ExportLine = Annotated[
    ExportStarted | SettingsLine | TranscriptLine | AgentLine | ExportFinished,
    Field(discriminator="type"),
]
"""Each line of `GET /api/me/export`, in this order: export, settings, every transcript
(newest first), the agent data, end."""


async def export_lines(
    user: User, settings: UserSettings, agent: AgentData, repo: Repository
) -> AsyncIterator[str]:
    """The export, line by line; the transcripts are read in batches, never all at once.
    The agent data is fetched by the caller before the first line, so a service that is
    away refuses the export instead of cutting it short."""

    def line(model: BaseModel) -> str:
        return model.model_dump_json() + "\n"

    yield line(ExportStarted(user=user, exported_at=datetime.now(UTC)))
    yield line(SettingsLine(settings=settings))
    count = 0
    async for transcript in repo.iterate(user.id, TranscriptQuery()):
        count += 1
        yield line(TranscriptLine(transcript=transcript))
    parts: list[tuple[AgentKind, list[dict[str, Any]]]] = [
        ("agent_session", agent.sessions),
        ("agent_note", agent.notes),
        ("agent_usage", agent.usage),
    ]
    for kind, items in parts:
        for item in items:
            yield line(AgentLine(type=kind, data=item))
    yield line(
        ExportFinished(
            transcripts=count,
            agent_sessions=len(agent.sessions),
            agent_notes=len(agent.notes),
            agent_usage=len(agent.usage),
        )
    )


async def forget_everything(
    user_id: str,
    repo: Repository,
    audio: AudioService,
    agents: AgentService,
    limiter: RateLimiter,
    quota: Quota,
) -> DataDeleted:
    purged = await audio.purge(user_id)
    agent_gone = await agents.delete_user_data(user_id)
    rows = await repo.forget(user_id)
    return DataDeleted(
        audio=purged,
        agents=agent_gone,
        gateway=rows,
        redis=RedisForgotten(
            keys=await _forget_buckets(limiter, user_id) + await quota.forget(user_id),
            events=await _forget_snapshots(limiter.redis, user_id),
        ),
    )


async def _forget_buckets(limiter: RateLimiter, user_id: str) -> int:
    literal = GLOB_SPECIAL.sub(r"\\\1", user_id)  # ids from X-Whisp-User may hold anything
    pattern = f"{limiter.prefix}:*:{literal}"
    keys = [k async for k in limiter.redis.scan_iter(match=pattern)]
    return int(await limiter.redis.delete(*keys)) if keys else 0


async def _forget_snapshots(redis: Redis, user_id: str) -> int:
    """The user's stored snapshots on `whisp:user-events` (they carry transcript text),
    found by a walk over the capped stream; what others see there is untouched. A page of
    theirs that resumes from a deleted id simply gets what follows it."""
    removed, start = 0, "-"
    while batch := cast(
        list[RawEntry], await redis.xrange(USER_EVENTS, min=start, count=SCAN_BATCH)
    ):
        mine = [entry_id for entry_id, fields in batch if _owner(fields) == user_id]
        if mine:
            removed += int(await redis.xdel(USER_EVENTS, *mine))
        if len(batch) < SCAN_BATCH:
            break
        start = "(" + batch[-1][0].decode()
    return removed


def _owner(fields: dict[bytes, bytes]) -> str | None:
    try:
        return str(json.loads(fields.get(DATA_FIELD, b"{}")).get("user_id"))
    except (ValueError, AttributeError):
        return None
