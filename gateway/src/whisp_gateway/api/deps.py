"""`Annotated` dependency aliases the routes use (and tests may override)."""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import Depends

from whisp_gateway.auth import CurrentUser
from whisp_gateway.clients import AgentService, AudioService
from whisp_gateway.errors import RateLimited
from whisp_gateway.hub import EventHub
from whisp_gateway.ratelimit import RateLimiter
from whisp_gateway.repository import Repository
from whisp_gateway.repository.models import User
from whisp_gateway.settings import GatewaySettings
from whisp_shared.service import app_state

SettingsDep = Annotated[GatewaySettings, Depends(app_state("settings", GatewaySettings))]
RepoDep = Annotated[Repository, Depends(app_state("repo", Repository))]
HubDep = Annotated[EventHub, Depends(app_state("hub", EventHub))]
AudioDep = Annotated[AudioService, Depends(app_state("audio", AudioService))]
AgentsDep = Annotated[AgentService, Depends(app_state("agents", AgentService))]
LimiterDep = Annotated[RateLimiter, Depends(app_state("limiter", RateLimiter))]


async def rate_limited(user: CurrentUser, limiter: LimiterDep) -> User:
    """The caller, after taking one token from their bucket (429 + Retry-After when empty)."""
    decision = await limiter.hit(user.id)
    if not decision.allowed:
        wait = max(1, math.ceil(decision.retry_after_s))
        raise RateLimited(f"too many requests; try again in {wait} s", retry_after=wait)
    return user


LimitedUser = Annotated[User, Depends(rate_limited)]
