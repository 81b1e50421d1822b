"""`web.wyoming`: the Wyoming server's part of the gateway's settings.

Framework-free like the gateway's `settings.py` (which nests this as `web.wyoming`), so it
loads without the `wyoming` library. Every address rule is checked at load: a satellite
the allowlist would refuse, or a route naming both an agent and a pipeline, fails the
start with the key that is wrong, not the first request from Home Assistant.
"""

from __future__ import annotations

import ipaddress
from typing import Self

from pydantic import ConfigDict, Field, IPvAnyNetwork, model_validator

from whisp_shared.options import AgentRoute

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
LOOPBACK: tuple[str, ...] = ("127.0.0.0/8", "::1/128")


def client_address(host: str) -> IpAddress | None:
    """A peer's address as the allowlist sees it (`::ffff:10.0.0.5` is 10.0.0.5: a socket
    bound to `::` reports IPv4 clients that way); None when it is not an IP address."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class Route(AgentRoute):
    """Who owns a transcript and which agent (or pipeline) gets it."""

    model_config = ConfigDict(extra="forbid")

    user: str | None = Field(default=None, min_length=1, max_length=64)
    """A WhisPTT user name (`whisp users add NAME`)."""

    def merged(self, override: Route) -> Route:
        """This route with what `override` sets explicitly (a satellite's own user or agent)."""
        mine = self.model_dump(include=set(Route.model_fields))
        return Route.model_validate({**mine, **override.model_dump(exclude_unset=True)})

    @model_validator(mode="after")
    def _one_target(self) -> Self:
        if self.agent_id and self.pipeline:
            raise ValueError("name an agent_id or a pipeline, not both")
        return self


class WyomingSettings(Route):
    """Home Assistant's speech-to-text protocol on its own TCP port, served by the gateway.

    Transcripts belong to `user` (or to a satellite's own user) and land in their history
    like any other; the defaults serve only this machine."""

    enabled: bool = True
    host: str = "127.0.0.1"
    """Listen address; `0.0.0.0` (containers, another Home Assistant box) needs `allow`."""
    port: int = Field(default=10300, ge=0, le=65535)
    """10300 is what Home Assistant suggests for speech-to-text; 0 picks a free port."""
    allow: list[IPvAnyNetwork] = Field(
        default_factory=lambda: [*map(ipaddress.ip_network, LOOPBACK)]
    )
    """Client addresses (CIDRs) that may connect; anyone else gets an `error` and is closed."""
    satellites: dict[IPvAnyNetwork, Route] = Field(default_factory=dict)
    """Per client address (or CIDR): its own `user`, `agent_id` or `pipeline` instead of the
    defaults above (the most specific match wins)."""
    model: str = "tiny.en"
    """The model `describe` advertises (what the transcription workers run)."""
    languages: list[str] = Field(default_factory=lambda: ["en"], min_length=1)
    streaming: bool = True
    """Advertise `supports_transcript_streaming` and send `transcript-start`, a
    `transcript-chunk` per settled piece of text while audio comes, then `transcript` and
    `transcript-stop`."""
    max_audio_s: float = Field(default=120.0, gt=0)
    """Audio past this length is not taken: the transcript is of what came until then."""
    max_audio_bytes: int = Field(default=32 * 1024 * 1024, gt=0)
    """The same, counted in the bytes the client sent (before conversion)."""
    max_event_bytes: int = Field(default=1024 * 1024, ge=1024)
    """Most bytes of one event's header line, data or payload; more is an error and a close."""
    idle_timeout_s: float = Field(default=60.0, gt=0)
    """A connection that sends nothing for this long is closed (its audio dropped)."""

    @model_validator(mode="after")
    def _satellites_are_allowed(self) -> Self:
        for network, override in self.satellites.items():
            if not any(_within(network, allowed) for allowed in self.allow):
                raise ValueError(f"satellite {network} is outside web.wyoming.allow")
            self.merged(override)  # both an agent and a pipeline: refused now
        return self

    @property
    def loopback_clients_only(self) -> bool:
        """True while `allow` admits this machine alone (then `host: 0.0.0.0` serves nobody)."""
        return all(n.network_address.is_loopback and n.broadcast_address.is_loopback
                   for n in self.allow)  # fmt: skip

    def allows(self, address: IpAddress) -> bool:
        return any(address in network for network in self.allow)

    def route_for(self, address: IpAddress) -> Route:
        """The defaults, with the most specific satellite entry covering `address` on top."""
        matches = [network for network in self.satellites if address in network]
        best = max(matches, key=lambda n: n.prefixlen, default=None)
        return self.merged(Route() if best is None else self.satellites[best])


def _within(inner: IpNetwork, outer: IpNetwork) -> bool:
    return inner.version == outer.version and (
        inner.network_address in outer and inner.broadcast_address in outer
    )
