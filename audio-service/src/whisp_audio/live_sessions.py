"""Where a live recording lives between calls: a Redis hash beside its audio stream.

`whisp:live-session:<id>` holds the owner, the client's rate, the limit, whether the owner
keeps the audio, the state (open → closing → committed, or cancelled) and the resampler's
state, so any replica of
the audio service can take the next call. Every change goes through one Lua script that
first checks the recording is where this call read it (`append`: still open, nobody
appended since; `end`: in one of the states it may end from), so two replicas (or two
racing calls) can never both append the same position or both end it. Both refresh the
TTL (`LIVE_AUDIO_TTL_S`) of the hash and of the stream.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final, Literal, cast

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from whisp_audio.resample import ResampleState
from whisp_shared.live_audio import LIVE_AUDIO_TTL_S, LIVE_SAMPLE_RATE, PCM_FIELD, live_audio_stream

State = Literal["open", "closing", "committed", "cancelled"]

ENTRY_MIN_SAMPLES: Final = LIVE_SAMPLE_RATE // 50
"""20 ms: smaller outputs wait in the hash for the next chunk, which bounds the stream's
entry count by the duration (so its MAXLEN never trims a recording)."""
PAGE: Final = 1_000

# KEYS: hash, stream. ARGV: consumed as read, consumed, emitted, tail, pending, pcm ('' for
# none), maxlen, ttl, next state, ended_by, the pcm field name.
APPEND_LUA: Final = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return 'gone' end
if state ~= 'open' then return state end
if redis.call('HGET', KEYS[1], 'consumed') ~= ARGV[1] then return 'moved' end
if ARGV[6] ~= '' then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[7], '*', ARGV[11], ARGV[6])
end
redis.call('HSET', KEYS[1], 'consumed', ARGV[2], 'emitted', ARGV[3], 'tail', ARGV[4],
           'pending', ARGV[5], 'state', ARGV[9], 'ended_by', ARGV[10])
redis.call('EXPIRE', KEYS[1], ARGV[8])
redis.call('EXPIRE', KEYS[2], ARGV[8])
return 'ok'
"""

# KEYS: hash, stream. ARGV: the states it may end from (space separated), the new state,
# ttl, n (hash field/value pairs that follow), the pairs, then the end entry's pairs.
END_LUA: Final = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return 'gone' end
if not string.find(' ' .. ARGV[1] .. ' ', ' ' .. state .. ' ', 1, true) then return state end
local n = tonumber(ARGV[4])
local fields = {'state', ARGV[2]}
for i = 5, 4 + 2 * n do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(fields))
local entry = {}
for i = 5 + 2 * n, #ARGV do entry[#entry + 1] = ARGV[i] end
redis.call('XADD', KEYS[2], '*', unpack(entry))
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[3])
return 'ok'
"""


def session_key(recording_id: str) -> str:
    return f"whisp:live-session:{recording_id}"


@dataclass(frozen=True)
class Session:
    """A live recording as one read of its hash found it."""

    recording_id: str
    user_id: str
    rate: int
    max_samples: int
    """The limit, in 16-kHz samples."""
    state: State
    ended_by: str
    """"", "commit", "max_duration" or "cancel"."""
    resample: ResampleState
    pending: bytes
    """Resampled audio (PCM16, 16 kHz) not in the stream yet: less than 20 ms."""
    duration_s: float
    """What was stored (once committed)."""
    keep_audio: bool = True
    """The owner's `keep_audio`, for the WAV stored at commit."""

    @classmethod
    def of(cls, recording_id: str, fields: dict[bytes, bytes]) -> Session:
        text = {k.decode(): v for k, v in fields.items()}
        return cls(
            recording_id=recording_id,
            user_id=text["user_id"].decode(),
            rate=int(text["rate"]),
            max_samples=int(text["max_samples"]),
            state=cast(State, text["state"].decode()),
            ended_by=text.get("ended_by", b"").decode(),
            resample=ResampleState(int(text["consumed"]), int(text["emitted"]), text["tail"]),
            pending=text["pending"],
            duration_s=float(text.get("duration_s", b"0") or 0),
            keep_audio=text.get("keep_audio", b"1") != b"0",
        )

    @property
    def written(self) -> int:
        """16-kHz samples already in the stream."""
        return self.resample.emitted - len(self.pending) // 2

    @property
    def max_entries(self) -> int:
        return math.ceil(self.max_samples / ENTRY_MIN_SAMPLES) + 8


class LiveSessions:
    """The hashes and streams of live recordings, on the bus's Redis."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._append = redis.register_script(APPEND_LUA)
        self._end = redis.register_script(END_LUA)

    async def create(
        self, recording_id: str, user_id: str, rate: int, max_samples: int, *, keep_audio: bool
    ) -> None:
        key = session_key(recording_id)
        fields: dict[str | bytes, str | bytes | int] = {
            "user_id": user_id,
            "rate": rate,
            "max_samples": max_samples,
            "state": "open",
            "ended_by": "",
            "consumed": 0,
            "emitted": 0,
            "tail": b"",
            "pending": b"",
            "keep_audio": int(keep_audio),
        }
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(key, mapping=cast(Any, fields))
        pipe.expire(key, LIVE_AUDIO_TTL_S)
        await pipe.execute()

    async def delete(self, recording_id: str) -> None:
        await self.redis.delete(session_key(recording_id))

    async def drop_audio(self, recording_id: str) -> None:
        """Delete an ended recording's audio stream (its copy of the audio on Redis) before
        its TTL would. The hash holds no audio once ended (the commit flushed its last
        samples) and stays, so a repeated commit still answers."""
        await self.redis.delete(live_audio_stream(recording_id))

    async def forget_user(self, user_id: str) -> int:
        """Delete every live recording of `user_id` (hash and audio stream), whatever its
        state: how a user's "delete everything" reaches Redis. Returns how many."""
        mine = []
        async for key in self.redis.scan_iter(match=session_key("*"), count=500):
            if await self.redis.hget(key, "user_id") == user_id.encode():
                mine.append(key.decode().removeprefix(session_key("")))
        for recording_id in mine:
            await self.redis.delete(session_key(recording_id), live_audio_stream(recording_id))
        return len(mine)

    async def get(self, recording_id: str) -> Session | None:
        fields = cast(dict[bytes, bytes], await self.redis.hgetall(session_key(recording_id)))
        return Session.of(recording_id, fields) if fields else None

    async def append(
        self,
        session: Session,
        state: ResampleState,
        *,
        pcm: bytes,
        pending: bytes,
        next_state: State = "open",
        ended_by: str = "",
    ) -> str:
        """XADD `pcm` (if any) and save the new state, if the recording is still open and
        as `session` read it: "ok", "moved" (another call appended first), "gone", or the
        state it is in now."""
        recording_id = session.recording_id
        return await _run(
            self._append,
            recording_id,
            [
                session.resample.consumed,
                state.consumed,
                state.emitted,
                state.tail,
                pending,
                pcm,
                session.max_entries,
                LIVE_AUDIO_TTL_S,
                next_state,
                ended_by,
                PCM_FIELD,
            ],
        )

    async def end(
        self,
        recording_id: str,
        allowed: tuple[State, ...],
        new_state: State,
        fields: dict[str, str | float],
        entry: dict[bytes, bytes],
    ) -> str:
        """Move to `new_state` and XADD the end `entry`, if now in one of `allowed`: "ok",
        "gone", or the state it is in now."""
        args: list[Any] = [" ".join(allowed), new_state, LIVE_AUDIO_TTL_S, len(fields)]
        for name, value in fields.items():
            args += [name, value]
        for key, raw in entry.items():
            args += [key, raw]
        return await _run(self._end, recording_id, args)

    async def recorded(self, recording_id: str) -> bytes:
        """Every chunk of the recording's stream, in order (PCM16 at 16 kHz)."""
        stream, pieces, start = live_audio_stream(recording_id), [], "-"
        while True:
            entries = cast(
                list[tuple[bytes, dict[bytes, bytes]]],
                await self.redis.xrange(stream, min=start, max="+", count=PAGE),
            )
            pieces += [fields[PCM_FIELD] for _id, fields in entries if PCM_FIELD in fields]
            if len(entries) < PAGE:
                return b"".join(pieces)
            start = f"({entries[-1][0].decode()}"


async def _run(script: AsyncScript, recording_id: str, args: list[Any]) -> str:
    outcome = await script(
        keys=[session_key(recording_id), live_audio_stream(recording_id)], args=args
    )
    return outcome.decode() if isinstance(outcome, bytes) else str(outcome)
