"""One way to reach Redis from a URL — plain, TLS, or the master a set of Sentinels elects.

- `redis://[[user]:password@]host:6379/0` and `rediss://…` (TLS; e.g.
  `?ssl_cert_reqs=required&ssl_ca_certs=/etc/ssl/ca.pem`): redis-py's own URL parsing, as a
  managed Redis hands them out.
- `redis+sentinel://[[user]:password@]s1:26379,s2:26379/<master name>[/db]`
  (`rediss+sentinel://` for TLS to the master; `?sentinel_password=…` when the Sentinels
  have their own): redis-py's Sentinel pool asks the Sentinels for the master on every new
  connection and drops connections on a READONLY answer, so after a failover the next
  command lands on the new master. Commands in flight at the moment of the failover fail
  and are retried by their callers (publishers answer 503, consumers read again).

The password is used, never logged: `redacted()` is what goes into logs and tables.
"""

from __future__ import annotations

from typing import Any, cast
from urllib.parse import parse_qs, unquote, urlsplit

from redis.asyncio import Redis
from redis.asyncio.sentinel import Sentinel

SENTINEL_SCHEMES = {"redis+sentinel": False, "rediss+sentinel": True}
"""Sentinel URL scheme → whether the master is reached over TLS."""
DEFAULT_SENTINEL_PORT = 26379


class RedisUrlError(ValueError):
    """A Redis URL that cannot work; the message says which part."""


def is_sentinel(url: str) -> bool:
    return urlsplit(url).scheme in SENTINEL_SCHEMES


def _sentinel_hosts(netloc: str) -> list[tuple[str, int]]:
    hosts = []
    for part in netloc.rpartition("@")[2].split(","):
        host, _, port = part.strip().rpartition(":") if ":" in part else (part.strip(), "", "")
        if not host:
            raise RedisUrlError(f"a Sentinel address is empty in {netloc.rpartition('@')[2]!r}")
        try:
            hosts.append((host.strip("[]"), int(port) if port else DEFAULT_SENTINEL_PORT))
        except ValueError as exc:
            raise RedisUrlError(f"bad Sentinel port in {part!r}") from exc
    return hosts


def _sentinel(url: str, **kwargs: Any) -> Redis:
    parts = urlsplit(url)
    path = [p for p in parts.path.split("/") if p]
    if not path:
        raise RedisUrlError("a Sentinel URL names the master: redis+sentinel://host:26379/mymaster")
    service, db = path[0], path[1] if len(path) > 1 else "0"
    if not db.isdigit():
        raise RedisUrlError(f"the database after the master name must be a number, not {db!r}")
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    auth = parts.netloc.rpartition("@")[0]
    username, _, password = auth.partition(":") if auth else ("", "", "")
    master: dict[str, Any] = {"db": int(db), **kwargs}
    if password:
        master["password"] = unquote(password)
    if username:
        master["username"] = unquote(username)
    if SENTINEL_SCHEMES[parts.scheme]:
        master["ssl"] = True
    sentinel_kwargs = {"socket_timeout": kwargs.get("socket_timeout", 2.0)}
    if "sentinel_password" in query:
        sentinel_kwargs["password"] = query["sentinel_password"]
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        _sentinel_hosts(parts.netloc), sentinel_kwargs=sentinel_kwargs, **master
    )
    return cast(Redis, sentinel.master_for(service, redis_class=Redis))


def open_redis(url: str, **kwargs: Any) -> Redis:
    """A client for `url` (see the module doc); `kwargs` go to every connection."""
    if is_sentinel(url):
        return _sentinel(url, **kwargs)
    try:
        return Redis.from_url(url, **kwargs)
    except ValueError as exc:
        raise RedisUrlError(str(exc)) from exc


def redacted(url: str) -> str:
    """`url` with its password (and a Sentinel password in the query) replaced by ***."""
    parts = urlsplit(url)
    auth, at, hosts = parts.netloc.rpartition("@")
    if at and ":" in auth:
        auth = f"{auth.partition(':')[0]}:***"
    query = "&".join(
        f"{k}=***" if k.endswith("password") else f"{k}={v[-1]}"
        for k, v in parse_qs(parts.query).items()
    )
    netloc = f"{auth}{at}{hosts}"
    return parts._replace(netloc=netloc, query=query).geturl()
