"""The Wyoming server's life inside the gateway's: listen at start, stop before the hub.

It lives in the gateway process because the gateway already owns what a Wyoming request
needs: users (whose history the transcript joins), rate limits, the audio service client
that opens live recordings, and the hub that brings back their partials and stored
transcripts. Each connection is a `WyomingHandler` on the `wyoming` library's handler
base, reading through a `GuardedReader` (frames capped at `max_event_bytes`).

A port that is taken (another Wyoming server, or a second gateway on this machine) does
not stop the gateway: the web page and the API stay up and the log says, at ERROR, that
Home Assistant cannot reach this one. Users but no `web.wyoming.user` is said at start
too; each connection is then refused with `wyoming_user_not_configured`, so Home
Assistant's "add integration" fails with that message instead of filling a stranger's
history. (Neither makes `/readyz` fail: that would take the web page of a shared gateway
down for people who never use Home Assistant.)
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from whisp_gateway.clients import AgentService, AudioService
from whisp_gateway.hub import EventHub
from whisp_gateway.ratelimit import RateLimiter
from whisp_gateway.repository import Repository
from whisp_gateway.settings import GatewaySettings
from whisp_gateway.wyoming.access import Context
from whisp_gateway.wyoming.frames import GuardedReader
from whisp_gateway.wyoming.handler import WyomingHandler
from whisp_shared.logs import get_logger
from whisp_shared.netutil import is_loopback

log = get_logger(__name__)


@dataclass
class WyomingServer:
    context: Context
    _server: asyncio.Server | None = None
    _handlers: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def port(self) -> int | None:
        """Where it listens (the real port when `port: 0` asked for any free one)."""
        if self._server is None or not self._server.sockets:
            return None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        settings = self.context.settings
        loop = asyncio.get_running_loop()

        def protocol() -> asyncio.StreamReaderProtocol:
            reader = GuardedReader(settings.max_event_bytes, loop)
            return asyncio.StreamReaderProtocol(reader, self._connected)

        try:
            self._server = await loop.create_server(protocol, settings.host, settings.port)
        except OSError as exc:
            log.error(
                "wyoming: cannot listen; Home Assistant cannot reach this gateway "
                "(set web.wyoming.port, or web.wyoming.enabled: false)",
                host=settings.host,
                port=settings.port,
                error=str(exc),
            )
            return
        log.info("wyoming: listening", address=f"tcp://{settings.host}:{self.port}")
        if not is_loopback(settings.host) and settings.loopback_clients_only:
            log.warning(
                "wyoming: listening beyond this machine but web.wyoming.allow admits only "
                "loopback clients: add Home Assistant's address",
                host=settings.host,
            )
        await self.context.check_users()

    def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert isinstance(reader, GuardedReader)
        task = asyncio.create_task(WyomingHandler(reader, writer, self.context).run())
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)

    async def stop(self) -> None:
        """Stop listening; open connections end (an utterance in flight is cancelled at the
        audio service, as a closed Realtime socket's is)."""
        if self._server is not None:
            self._server.close()
        for task in list(self._handlers):
            task.cancel()
        if self._handlers:
            await asyncio.wait(self._handlers, timeout=5)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None


def wyoming_server(
    settings: GatewaySettings,
    repo: Repository,
    hub: EventHub,
    audio: AudioService,
    limiter: RateLimiter,
    agents: AgentService,
) -> WyomingServer | None:
    """The server the lifespan starts, or None when `web.wyoming.enabled` is false."""
    if not settings.wyoming.enabled:
        return None
    return WyomingServer(Context(settings, repo, hub, audio, limiter, agents))
