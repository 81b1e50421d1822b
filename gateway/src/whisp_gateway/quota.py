"""Per-user daily audio quotas, shared by every gateway replica (a counter in Redis).

Each user has one counter per UTC day, `whisp:quota:<day>:<user id>`, holding the seconds
of audio the gateway accepted from them that day: an upload's `duration_s` as the audio
service decoded it, a live utterance's (Realtime socket, Wyoming) committed samples. One
INCRBYFLOAT and EXPIREAT in a MULTI add and set its expiry together, so replicas never
race; the key outlives its day by `GRACE_S` and then goes by itself.

The check comes BEFORE a recording is accepted: a user whose used seconds have reached
their quota is refused (429 `quota_exceeded`, `Retry-After` up to the next UTC midnight).
So one clip may cross the line and is still taken — an upload's length is known only once
the audio service has decoded it, and a held push-to-talk key is never cut off half-way —
and the next one is refused. Quotas come from `web.quota` by user name (`QuotaSettings`);
the counting happens for unlimited users too, so `GET /api/me/usage` always says what was
used and a quota set mid-day applies to the day so far.

Days follow each replica's own clock (UTC): replicas a second apart disagree only about a
clip sent in that second around midnight.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta

from redis.asyncio import Redis

from whisp_gateway import metrics
from whisp_gateway.errors import QuotaExceeded
from whisp_gateway.repository.models import User
from whisp_gateway.settings import QuotaSettings
from whisp_shared.user_data import AudioUsage

PREFIX = "whisp:quota"
GRACE_S = 3600
"""How long a day's counter outlives the day (a replica whose clock lags still finds it)."""
NO_RETRY = {"x-should-retry": "false"}
"""OpenAI's SDKs retry a 429 at once unless told not to; nothing changes before midnight."""

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def next_midnight(now: datetime) -> datetime:
    """The start of the UTC day after `now`'s: when every counter starts again from 0."""
    day = now.astimezone(UTC).date() + timedelta(days=1)
    return datetime.combine(day, time(), tzinfo=UTC)


def _seconds(value: float) -> str:
    """3600 -> "3600", 2.5 -> "2.5": what a person reads in a message."""
    return f"{value:.1f}".removesuffix(".0")


def _wait(seconds: int) -> str:
    """5 h 12 min, 12 min, 40 s: how long until the reset, roughly, for a message."""
    if seconds < 60:
        return f"{seconds} s"
    hours, minutes = divmod(seconds // 60, 60)
    if not hours:
        return f"{minutes} min"
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def refusal(used: float, limit: float, now: datetime) -> QuotaExceeded:
    """The 429 for a user at or past their quota, with `Retry-After` to the next midnight."""
    wait = max(1, math.ceil((next_midnight(now) - now).total_seconds()))
    return QuotaExceeded(
        f"You have used {_seconds(used)} s of your {_seconds(limit)} s of audio today; "
        f"the quota resets at 00:00 UTC, in {_wait(wait)}.",
        retry_after=wait,
        headers=NO_RETRY,
    )


class Quota:
    def __init__(
        self, redis: Redis, settings: QuotaSettings, prefix: str = PREFIX, clock: Clock = utc_now
    ) -> None:
        self.redis = redis
        self.settings = settings
        self.prefix = prefix
        self.clock = clock

    def key(self, user_id: str, day: date) -> str:
        return f"{self.prefix}:{day.isoformat()}:{user_id}"

    async def used(self, user_id: str, now: datetime | None = None) -> float:
        """Seconds of audio accepted from the user on `now`'s UTC day."""
        day = (now or self.clock()).astimezone(UTC).date()
        return float(await self.redis.get(self.key(user_id, day)) or 0)

    async def check(self, user: User) -> None:
        """Refuse (QuotaExceeded) when the user's used seconds today reached their quota;
        under it, anything is accepted, however long (see the module docstring)."""
        limit = self.settings.limit_for(user.name)
        if limit is None:
            return
        now = self.clock()
        used = await self.used(user.id, now)
        if used >= limit:
            metrics.QUOTA_REFUSALS.inc()
            raise refusal(used, limit, now)

    def counted_key(self, user_id: str, day: date) -> str:
        """The recording ids already counted that day (`add` with an id counts each once)."""
        return f"{self.key(user_id, day)}:counted"

    async def add(
        self,
        user_id: str,
        seconds: float,
        recording_id: str | None = None,
        at: datetime | None = None,
    ) -> float:
        """Count `seconds` of accepted audio on the counter of `at`'s UTC day (default:
        now); that day's total so far. With `recording_id`, a recording is counted once
        however often it is reported (a device recording's stop answers again with what it
        already published; the bus reports every recording, at its own time `at`, so one
        read after midnight is still found on the day it was counted)."""
        now = at or self.clock()
        if seconds <= 0:
            return await self.used(user_id, now)
        day = now.astimezone(UTC).date()
        key = self.key(user_id, day)
        expires = int(next_midnight(now).timestamp()) + GRACE_S
        if recording_id is not None:
            seen = self.counted_key(user_id, day)
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.sadd(seen, recording_id)
                pipe.expireat(seen, expires)
                added, _ = await pipe.execute()
            if not added:
                return await self.used(user_id, now)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.incrbyfloat(key, seconds)
            pipe.expireat(key, expires)
            total, _ = await pipe.execute()
        return float(total)

    async def usage(self, user: User) -> AudioUsage:
        now = self.clock()
        used = await self.used(user.id, now)
        limit = self.settings.limit_for(user.name)
        return AudioUsage(
            day=now.astimezone(UTC).date(),
            used_s=round(used, 3),
            quota_s=limit,
            remaining_s=None if limit is None else round(max(0.0, limit - used), 3),
            resets_at=next_midnight(now),
        )

    async def forget(self, user_id: str) -> int:
        """Delete the user's counters ("delete everything of mine"): the days a key may
        still live for (yesterday's within its grace, tomorrow's from a clock ahead), by
        name, so no pattern can match another user's id."""
        today = self.clock().astimezone(UTC).date()
        days = (today - timedelta(days=1), today, today + timedelta(days=1))
        keys = [k for day in days for k in (self.key(user_id, day), self.counted_key(user_id, day))]
        return int(await self.redis.delete(*keys))
