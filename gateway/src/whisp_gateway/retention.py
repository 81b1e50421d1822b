"""The retention sweep: each user's own `transcript_retention_days` and
`audio_retention_days` (`/api/me/settings`), enforced by the gateway every
`web.retention_interval_s`.

Per user with a retention: the audio older than the transcript retention goes first (the
audio service's purge route), then those transcripts and their answers; then the audio older
than the audio retention. A user whose audio cannot be purged now (the audio service away)
keeps their transcripts until the next sweep, so no transcript loses its audio silently
and no audio outlives its transcript for long. Replicas share the work through a Redis
claim per interval (one sweeps, the others skip); a sweep is idempotent anyway.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, Field
from redis.asyncio import Redis

from whisp_gateway.clients import AudioService
from whisp_gateway.repository import Repository
from whisp_shared.errors import WhispError
from whisp_shared.logs import get_logger

log = get_logger(__name__)
CLAIM_KEY = "whisp:retention:claim"

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class SweepResult(BaseModel):
    users: int = Field(ge=0)
    transcripts: int = Field(ge=0)
    """Transcripts deleted (with their answers)."""
    audio: int = Field(ge=0)
    """Recordings whose audio the audio service deleted."""
    failed_users: list[str] = Field(default_factory=list)
    """Users skipped this time (a service away); the next sweep tries again."""


@dataclass
class RetentionSweeper:
    repo: Repository
    audio: AudioService
    interval_s: float
    clock: Clock = field(default=utc_now)
    """Injectable so a test decides what "now" is."""

    async def sweep(self) -> SweepResult:
        now = self.clock()
        result = SweepResult(users=0, transcripts=0, audio=0)
        for user_id, settings in await self.repo.retention_policies():
            result.users += 1
            try:
                if settings.transcript_retention_days is not None:
                    cutoff = now - timedelta(days=settings.transcript_retention_days)
                    result.audio += (await self.audio.purge(user_id, before=cutoff)).deleted
                    result.transcripts += await self.repo.forget_before(user_id, cutoff)
                if settings.audio_retention_days is not None:
                    cutoff = now - timedelta(days=settings.audio_retention_days)
                    result.audio += (await self.audio.purge(user_id, before=cutoff)).deleted
            except WhispError as exc:
                log.warning("retention sweep skipped a user", user_id=user_id, code=exc.code)
                result.failed_users.append(user_id)
        return result

    async def run(self, redis: Redis) -> None:
        """Sweep every interval (the replica that claims it), until cancelled."""
        while True:
            try:
                if await redis.set(CLAIM_KEY, "1", nx=True, ex=max(1, int(self.interval_s))):
                    done = await self.sweep()
                    if done.transcripts or done.audio or done.failed_users:
                        log.info("retention sweep", **done.model_dump())
            except Exception:  # a bad sweep must not end the loop; the next one retries
                log.exception("retention sweep failed")
            await asyncio.sleep(self.interval_s)
