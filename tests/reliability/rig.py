"""What the reliability tests share: service specs wired together, a private Redis that can
be SIGKILLed and brought back, and readers of the streams and the gateway's history.

Every service is a real process started through the shared harness
(`tests/support/processes.py`), on loopback, with a config file of the test's own (no
repository config.yaml) and fast fault settings: an entry a dead consumer held is reclaimed
after `CLAIM_IDLE_MS`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import redis

from tests.support.processes import ServiceProcess, Services, service
from whisp_cli.redis_server import RedisServer
from whisp_cli.stack import ServiceSpec, signal_group, stop_processes
from whisp_shared.caller import LOCAL_USER_ID
from whisp_shared.codec import decode_entry, decode_fields
from whisp_shared.events import Event
from whisp_shared.views import USER_EVENT_ADAPTER, UserEvent

CLAIM_IDLE_MS = 1000
"""A dead consumer's entry is taken over after this long (config.yaml ships 30 s)."""
NOTHING_LISTENS = "http://127.0.0.1:9"
USER = LOCAL_USER_ID
"""Single-user mode (loopback, no users): every request is this user's."""

BUS_ENV = {
    "WHISP_BUS__CLAIM_IDLE_MS": str(CLAIM_IDLE_MS),
    "WHISP_BUS__READ_BLOCK_MS": "100",
}
UNSET = ("REDIS_URL", "DATABASE_URL", "OPENAI_API_KEY", "WHISP_CONFIG")
"""Nothing of the caller's shell reaches the services."""


def write_config(folder: Path, text: str = "") -> Path:
    """The services' config.yaml: local mode, plus `text` (more sections)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.yaml"
    path.write_text("mode: local\n" + text)
    return path


class Specs:
    """Specs for one test's services, each on a free port, wired to its siblings."""

    def __init__(self, config: Path, **env: str) -> None:
        self.env = {"WHISP_CONFIG": str(config), **BUS_ENV, **env}

    def audio(self, name: str = "audio") -> ServiceSpec:
        return service("audio", name=name, env={**self.env, "WHISP_AUDIO__AUDIO_URI": "file"})

    def worker(self, name: str, **env: str) -> ServiceSpec:
        return service("transcription", name=name, env={**self.env, **env})

    def agents(self, name: str = "agents", **env: str) -> ServiceSpec:
        return service("agents", name=name, env={**self.env, **env})

    def gateway(
        self, name: str = "gateway", audio: ServiceSpec | None = None, **env: str
    ) -> ServiceSpec:
        return service(
            "gateway",
            name=name,
            env={
                **self.env,
                "WHISP_WEB__AUDIO_SERVICE_URL": audio.url if audio else NOTHING_LISTENS,
                "WHISP_WEB__AGENT_SERVICE_URL": NOTHING_LISTENS,
                # Load tests upload far more than a person would; the limit is for people.
                "WHISP_WEB__RATE_LIMIT": "100000/hour",
                "WHISP_WEB__RATE_BURST": "10000",
                **env,
            },
        )


def services(specs: list[ServiceSpec], root: Path, redis_url: str, **kw: Any) -> Services:
    """The harness for `specs` on `redis_url`: logs in ROOT/logs, data in ROOT/data."""
    return Services(
        specs,
        log_dir=root / "logs",
        data_dir=root / "data",
        redis_url=redis_url,
        unset=UNSET,
        **kw,
    )


def consumer_names(proc: ServiceProcess) -> set[str]:
    """The names a service process reads under (its group reader and its reclaimer), as
    `whisp_shared.bus.default_consumer_name` makes them."""
    base = f"{socket.gethostname()}-{proc.pid}"
    return {base, f"{base}:reclaim"}


# --- a Redis that can die ---------------------------------------------------------------


@contextlib.contextmanager
def private_redis(folder: Path, persist: bool = False) -> Iterator[RedisServer]:
    """A redis-server of this test's own (AOF in `folder` with `persist`); its process group
    is stopped on every way out."""
    server = RedisServer(data_dir=folder, persist=persist)
    try:
        yield server.start()
    finally:
        if server.process is not None:
            stop_processes([server.process], timeout=10)
        server.close()


def sigterm_redis(server: RedisServer) -> None:
    """A graceful stop (SIGTERM: Redis flushes its AOF and exits), as a restart by ops."""
    assert server.process is not None
    signal_group(server.process, signal.SIGTERM)
    server.process.wait(timeout=15)


def sigkill_redis(server: RedisServer) -> None:
    """SIGKILL the server's process group (no shutdown, no final AOF write)."""
    assert server.process is not None
    signal_group(server.process, signal.SIGKILL)
    server.process.wait(timeout=10)
    server.stop()  # forget the dead process (and close its pipe)


# --- reading what happened ------------------------------------------------------------------


def client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=10)


def events(r: redis.Redis, stream: str) -> list[Event]:
    return [decode_entry(fields) for _id, fields in r.xrange(stream)]


def user_events(r: redis.Redis) -> list[tuple[str, UserEvent]]:
    """(stream id, snapshot) of everything the gateway forwarded to users."""
    return [
        (entry_id.decode(), decode_fields(fields, USER_EVENT_ADAPTER))
        for entry_id, fields in r.xrange("whisp:user-events")
    ]


def count_by_recording(items: list[Event], kind: type) -> Counter[str]:
    return Counter(e.recording_id for e in items if isinstance(e, kind))


def pending_count(r: redis.Redis, stream: str, group: str) -> int:
    try:
        return int(r.xpending(stream, group)["pending"])
    except redis.ResponseError:  # no such group (nothing ever consumed)
        return 0


def holders(r: redis.Redis, stream: str, group: str) -> Counter[str]:
    """Consumer name -> entries it holds (delivered, not acked)."""
    try:
        pending = r.xpending_range(stream, group, min="-", max="+", count=1000)
    except redis.ResponseError:
        return Counter()
    return Counter(p["consumer"].decode() for p in pending)


def history(gateway_url: str, **params: str) -> list[dict[str, Any]]:
    """Every transcript in the (single) user's history, following the cursor."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    with httpx.Client(base_url=gateway_url, timeout=30) as http:
        for _page in range(1000):
            query = {"limit": "100", **params, **({"cursor": cursor} if cursor else {})}
            response = http.get("/api/transcripts", params=query)
            assert response.status_code == 200, response.text
            page = response.json()
            items.extend(page["items"])
            cursor = page.get("next_cursor")
            if not cursor:
                break
    return items


def wait_until(
    check: Callable[[], bool], timeout: float, what: str, interval: float = 0.1
) -> float:
    """Poll `check` until it is true; seconds waited (AssertionError naming `what`)."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what}: not within {timeout:.0f}s")
        time.sleep(interval)
    return time.monotonic() - started


def readyz(url: str) -> tuple[int, dict[str, Any]]:
    """(status, body) of a service's /readyz; (0, {}) when it does not answer at all."""
    try:
        response = httpx.get(f"{url}/readyz", timeout=3)
    except httpx.HTTPError:
        return 0, {}
    try:
        return response.status_code, response.json()
    except ValueError:
        return response.status_code, {}


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def log_lines(proc: ServiceProcess, *needles: str) -> list[str]:
    return [line for line in proc.log_text().splitlines() if all(n in line for n in needles)]


def env_flag(name: str, default: int) -> int:
    """A count a person may raise for a longer soak (e.g. WHISP_RELIABILITY_ROUNDS=100)."""
    return int(os.environ.get(name, default))
