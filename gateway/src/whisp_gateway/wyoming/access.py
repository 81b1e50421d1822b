"""Who a Wyoming connection is: its address decides whether it may talk at all, and whose
history (and which agent) its transcripts go to.

Wyoming has no authentication, so the address is all there is: the allowlist
(`web.wyoming.allow`, loopback by default) admits it, a satellite entry may give it its
own user and agent, and `web.wyoming.user` is everyone else's owner. Without a user,
transcripts belong to the single local user — only while the gateway is in single-user
mode (loopback, no accounts), exactly as for the web page; once accounts exist a user
must be named, and each connection is told so until one is.
"""

from __future__ import annotations

from dataclasses import dataclass

from whisp_gateway.api.deps import rate_limited
from whisp_gateway.auth import LOCAL_USER, single_user_mode
from whisp_gateway.clients import AgentService, AudioService
from whisp_gateway.hub import EventHub
from whisp_gateway.ratelimit import RateLimiter
from whisp_gateway.realtime.protocol import ProtocolError
from whisp_gateway.repository import Repository
from whisp_gateway.repository.models import User
from whisp_gateway.settings import GatewaySettings
from whisp_gateway.user_options import default_route
from whisp_gateway.wyoming.settings import WyomingSettings, client_address
from whisp_shared.codes import ErrorCode
from whisp_shared.logs import get_logger
from whisp_shared.options import AgentRoute

log = get_logger(__name__)


@dataclass(frozen=True)
class Caller:
    user: User
    route: AgentRoute
    address: str


@dataclass
class Context:
    """What every connection shares: the gateway's settings and services."""

    gateway: GatewaySettings
    repo: Repository
    hub: EventHub
    audio: AudioService
    limiter: RateLimiter
    agents: AgentService

    @property
    def settings(self) -> WyomingSettings:
        return self.gateway.wyoming

    async def admit(self, peer: str) -> Caller:
        """The caller at `peer` (its IP), or a ProtocolError saying why it may not talk."""
        address = client_address(peer)
        if address is None or not self.settings.allows(address):
            log.warning("wyoming: client refused (not in web.wyoming.allow)", client=peer)
            raise ProtocolError(
                ErrorCode.CLIENT_NOT_ALLOWED,
                f"{peer} may not use this server: add it to web.wyoming.allow",
            )
        route = self.settings.route_for(address)
        user = await self._user(route.user)
        # A satellite that names no agent gets its owner's `default_agent`.
        if route.wants_agent:
            agent = route.route()
        else:
            saved = await self.repo.get_settings(user.id)
            agent = await default_route(self.agents, user.id, saved.default_agent)
        return Caller(user, agent, str(address))

    async def _user(self, name: str | None) -> User:
        if name is None:
            if await single_user_mode(self.gateway, self.repo):
                return LOCAL_USER
            raise ProtocolError(
                ErrorCode.WYOMING_USER_NOT_CONFIGURED,
                "this gateway has users: name the one who owns Home Assistant's transcripts "
                "in web.wyoming.user (WHISP_WEB__WYOMING__USER)",
            )
        found = next((u for u in await self.repo.list_users() if u.name == name), None)
        user = None if found is None else await self.repo.user_by_id(found.id)
        if user is None:
            raise ProtocolError(
                ErrorCode.WYOMING_USER_NOT_CONFIGURED,
                f"web.wyoming names the user {name!r}, who does not exist here "
                f"(whisp users add {name})",
            )
        return user

    async def check_users(self) -> None:
        """At start: say in the log what connections would be told (the default owner's
        and each satellite's)."""
        names = {self.settings.user} | {
            self.settings.merged(route).user for route in self.settings.satellites.values()
        }
        for name in names:
            try:
                await self._user(name)
            except ProtocolError as exc:
                log.error(f"wyoming: {exc.message}; until then its requests are refused")

    async def before_utterance(self, user: User) -> None:
        """Each utterance takes one request from the user's rate limit, as an upload does."""
        await rate_limited(user, self.limiter, self.gateway, self.repo)
