"""How deep a consumer group is in a stream, read the way KEDA reads it, and kept as gauges.

KEDA's `redis-streams` triggers (deploy/k8s/base/scaledobjects.yaml) measure one thing each:
`lagCount` reads the `lag` of XINFO GROUPS (entries never delivered to the group; Redis >= 7)
and `pendingEntriesCount` reads XPENDING's count (delivered, not yet acked: work in flight),
which XINFO GROUPS reports as `pending`. One XINFO GROUPS gives both, so the gauges here show
on the dashboard the two numbers the autoscaler acts on, per stream and group, and never a
sum of them that KEDA does not see.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from prometheus_client import Gauge
from redis.asyncio import Redis

from whisp_shared.logs import get_logger

log = get_logger(__name__)

GROUP_LAG = Gauge(
    "whisp_bus_group_lag",
    "Entries of a stream never delivered to the group (XINFO GROUPS lag; KEDA's lagCount).",
    ["stream", "group"],
)
GROUP_PENDING = Gauge(
    "whisp_bus_group_pending",
    "Entries delivered to the group and not yet acked: work in flight (XPENDING; KEDA's "
    "pendingEntriesCount).",
    ["stream", "group"],
)
REFRESH_S = 5.0
"""How often a service refreshes the gauges (Prometheus scrapes every 15 s)."""


@dataclass(frozen=True, slots=True)
class GroupDepth:
    """What a group has left of a stream."""

    lag: int
    """Never delivered to any consumer of the group."""
    pending: int
    """Delivered and not yet acked (held by a consumer, or left for reclaim)."""


async def read_depth(redis: Redis, stream: str, group: str) -> GroupDepth:
    """The group's depth in `stream`; zero when the stream or the group does not exist yet."""
    try:
        groups: list[dict[str, Any]] = await redis.xinfo_groups(stream)
    except Exception as exc:
        if "no such key" in str(exc).lower():
            return GroupDepth(0, 0)
        raise
    for info in groups:
        if _text(info["name"]) != group:
            continue
        lag = info.get("lag")
        if lag is None:  # Redis < 7, or a lag Redis cannot tell (entries deleted mid-way)
            last = _text(info["last-delivered-id"])
            lag = len(await redis.xrange(stream, min=f"({last}", count=100_000) or [])
        return GroupDepth(int(lag), int(info["pending"]))
    return GroupDepth(0, 0)


async def watch_depth(
    redis: Redis, watched: Iterable[tuple[str, str]], every_s: float = REFRESH_S
) -> None:
    """Keep GROUP_LAG and GROUP_PENDING of each `(stream, group)` current until cancelled
    (a service's background loop; a failed read is logged and tried again next time)."""
    pairs = sorted(set(watched))
    while True:
        for stream, group in pairs:
            try:
                depth = await read_depth(redis, stream, group)
            except Exception as exc:  # a metric must never take the service down
                log.warning("group depth refresh failed", stream=stream, group=group,
                            error=str(exc))  # fmt: skip
                continue
            GROUP_LAG.labels(stream, group).set(depth.lag)
            GROUP_PENDING.labels(stream, group).set(depth.pending)
        await asyncio.sleep(every_s)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
