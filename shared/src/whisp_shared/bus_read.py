"""New entries in one bulk string (read.lua), for reading a backlog at the speed of Redis.

redis-py without hiredis parses a stream reply one element at a time, each a line read off
the asyncio stream: about 35 µs an entry, as much as everything else the bus does with it.
read.lua runs the same XREADGROUP (non-blocking) inside Redis and returns its entries packed
in one string, which `unpack_entries` splits with a few slices an entry.
"""

from __future__ import annotations

from importlib import resources

READ_LUA = (resources.files(__package__) / "read.lua").read_text()

RawEntry = tuple[bytes | None, dict[bytes, bytes] | None]
"""An entry as redis-py returns it; (None, None) for one deleted while pending (Redis 6.2)."""


def unpack_entries(blob: bytes) -> list[RawEntry]:
    """read.lua's reply: each entry's id, its number of field strings, then the strings."""
    entries: list[RawEntry] = []
    pos, end = 0, len(blob)
    while pos < end:
        entry_id, pos = _string(blob, pos)
        colon = blob.index(b":", pos)
        count, pos = int(blob[pos:colon]), colon + 1
        flat = []
        for _ in range(count):
            value, pos = _string(blob, pos)
            flat.append(value)
        entries.append((entry_id, dict(zip(flat[::2], flat[1::2], strict=True))))
    return entries


def _string(blob: bytes, pos: int) -> tuple[bytes, int]:
    colon = blob.index(b":", pos)
    start = colon + 1
    stop = start + int(blob[pos:colon])
    return blob[start:stop], stop
