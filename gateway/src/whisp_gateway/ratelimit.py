"""Per-user rate limits shared by every gateway replica (a token bucket in Redis).

The bucket holds `burst` tokens and refills at the configured rate; one Lua call
refills, takes a token and answers how long to wait when empty, atomically, so
replicas never race each other.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, cast

from redis.asyncio import Redis

PERIODS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}

_BUCKET_LUA = """
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local clock = redis.call('TIME')  -- one clock for every replica
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or burst
local ts = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local allowed = 0
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 1)
return {allowed, tostring(wait)}
"""


@dataclass(frozen=True)
class Limit:
    per_second: float
    burst: int

    @classmethod
    def parse(cls, spec: str, burst: int) -> Limit:
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(second|minute|hour|day)\s*", spec)
        if not match:
            raise ValueError(f"rate limit {spec!r} must look like '100/hour'")
        return cls(int(match.group(1)) / PERIODS[match.group(2)], burst)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after_s: float


class RateLimiter:
    def __init__(self, redis: Redis, limit: Limit, prefix: str = "whisp:rl") -> None:
        self.redis = redis
        self.limit = limit
        self.prefix = prefix

    async def hit(
        self, user_id: str, action: str = "default", limit: Limit | None = None
    ) -> Decision:
        """Take one token from the user's bucket (`limit`: the user's own, else the default)."""
        limit = limit or self.limit
        allowed, wait = cast(
            list[Any],
            await self.redis.eval(
                _BUCKET_LUA,
                1,
                f"{self.prefix}:{action}:{user_id}",
                limit.per_second,
                limit.burst,
            ),
        )
        return Decision(bool(int(allowed)), float(wait))
