"""`Annotated` dependency aliases the routes use (and tests may override)."""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import Depends

from whisp_gateway.auth import CurrentUser, single_user_mode
from whisp_gateway.clients import AgentService, AudioService
from whisp_gateway.errors import RateLimited
from whisp_gateway.hub import EventHub
from whisp_gateway.queue_watch import QueueWatcher
from whisp_gateway.quota import Quota
from whisp_gateway.ratelimit import Limit, RateLimiter
from whisp_gateway.repository import Repository
from whisp_gateway.repository.models import User
from whisp_gateway.settings import GatewaySettings
from whisp_shared.caller import LOCAL_USER_ID
from whisp_shared.service import app_state

SettingsDep = Annotated[GatewaySettings, Depends(app_state("settings", GatewaySettings))]
RepoDep = Annotated[Repository, Depends(app_state("repo", Repository))]
HubDep = Annotated[EventHub, Depends(app_state("hub", EventHub))]
AudioDep = Annotated[AudioService, Depends(app_state("audio", AudioService))]
AgentsDep = Annotated[AgentService, Depends(app_state("agents", AgentService))]
LimiterDep = Annotated[RateLimiter, Depends(app_state("limiter", RateLimiter))]
QuotaDep = Annotated[Quota, Depends(app_state("quota", Quota))]
QueueDep = Annotated[QueueWatcher, Depends(app_state("queue", QueueWatcher))]


async def rate_limited(
    user: CurrentUser, limiter: LimiterDep, settings: SettingsDep, repo: RepoDep
) -> User:
    """The caller, after taking one token from their bucket (429 + Retry-After when empty).

    The single local user (loopback, no accounts) is never throttled: the limit protects a
    shared gateway's users from each other, and there is nobody else here."""
    if user.id == LOCAL_USER_ID and await single_user_mode(settings, repo):
        return user
    own = None
    if user.rate_limit:  # a service account's own rate (`whisp users add --rate-limit`)
        own = Limit.parse(user.rate_limit, user.rate_burst or settings.rate_burst)
    decision = await limiter.hit(user.id, limit=own)
    if not decision.allowed:
        wait = max(1, math.ceil(decision.retry_after_s))
        raise RateLimited(f"too many requests; try again in {wait} s", retry_after=wait)
    return user


LimitedUser = Annotated[User, Depends(rate_limited)]
