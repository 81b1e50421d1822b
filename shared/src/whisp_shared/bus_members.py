"""Who is in a consumer group: a consumer leaves it when it can no longer lose anything.

Every pod's consumer is a name in its group (the pod name). A name stays in `XINFO
CONSUMERS` after its pod is gone unless something deletes it, and deleting a consumer drops
its pending entries from the group, with the recordings they stand for. So a name goes only
in one step with the check that nothing is pending for it (`LEAVE_LUA`):
- on a clean stop, the consumer itself leaves (`bus_group.GroupReader.stop`);
- a pod that was killed, or stopped with entries pending, is removed by any peer's trimmer
  once its entries were reclaimed and it stayed idle `gone_consumer_idle_s`.
A live consumer removed by mistake loses nothing: the next entry it reads adds its name back
(Redis adds a name with its first delivery, not with a read that finds nothing).
"""

from __future__ import annotations

from redis.asyncio import Redis

from whisp_shared.logs import get_logger

log = get_logger(__name__)

LEAVE_LUA = """
if #redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2]) > 0 then return 0 end
redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
return 1
"""
"""Remove consumer ARGV[2] from group ARGV[1] of stream KEYS[1] if nothing is pending for
it (1), else leave it (0): one step, so no entry is dropped with the consumer."""


async def leave(redis: Redis, stream: str, group: str, name: str) -> bool:
    """Delete `name` from `group` unless entries are pending for it; whether it went."""
    return bool(await redis.eval(LEAVE_LUA, 1, stream, group, name))


async def forget_gone(redis: Redis, stream: str, idle_s: float) -> list[str]:
    """Remove every consumer of every group of `stream` idle longer than `idle_s` with
    nothing pending (a pod gone without a clean stop); the names removed."""
    gone: list[str] = []
    if not await redis.exists(stream):
        return gone
    for group in await redis.xinfo_groups(stream):
        group_name = _text(group["name"])
        for member in await redis.xinfo_consumers(stream, group_name):
            name = _text(member["name"])
            if int(member["pending"]) or int(member["idle"]) < idle_s * 1000:
                continue
            if await leave(redis, stream, group_name, name):
                gone.append(name)
                log.info("removed a gone consumer", stream=stream, group=group_name,
                         consumer=name, idle_s=int(member["idle"]) // 1000)  # fmt: skip
    return gone


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
