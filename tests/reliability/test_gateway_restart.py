"""Restart a gateway while browsers hold SSE connections to it: each one reconnects with
`Last-Event-ID` and misses nothing, whether it comes back to the same replica or lands on
another one.

Two gateway replicas (A, B) share Redis and the database. Followers behave like a browser's
EventSource: on a dropped stream they reconnect, sending the last id they saw, to whatever
the "load balancer" (`route`) names. Events flow all along: the test publishes what the
audio service and the workers would (`RecordingCompleted`, then `TranscriptReady`, for the
single local user, plus another user's events in between that must never show).

Phase 1: A goes down (SIGTERM as a deploy does, or SIGKILL as a crash does) and is started
again; the followers reconnect to A. Phase 2: A goes down again and stays down; the
followers reconnect to B. Then every follower must have received exactly the user's
snapshots on whisp:user-events from its first one on: same ids, same order, none twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from tests.gateway.sse import events as sse_events
from tests.reliability.rig import (
    USER,
    Specs,
    private_redis,
    services,
    user_events,
    write_config,
)
from tests.reliability.rig import client as sync_client
from whisp_shared.codec import encode_entry
from whisp_shared.events import RecordingCompleted, TranscriptReady
from whisp_shared.streams import RECORDINGS, TRANSCRIPTS

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

FOLLOWERS = 3
PUBLISH_EVERY_S = 0.05
RECONNECT_AFTER_S = 0.2  # EventSource's retry is ~3 s; shorter keeps the test short
MAX_CONNECTS = 500  # per follower: bounds a follower that can never get in
CATCH_UP_TIMEOUT_S = 45.0
GRACEFUL_STOP_S = 15.0  # a deploy (Kubernetes) sends SIGKILL 30 s after SIGTERM
OTHER_USER = "someone-else"


@dataclass
class Follower:
    """One browser tab's EventSource: reconnects with `Last-Event-ID` to `route()`."""

    name: str
    route: Callable[[], str]
    received: list[tuple[str, str]] = field(default_factory=list)
    """(stream id, the stored event's id) of each snapshot, in arrival order."""
    foreign: list[str] = field(default_factory=list)
    last_id: str | None = None
    connects: int = 0
    connected: list[str] = field(default_factory=list)
    """The base URL of each connection that was accepted."""

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set() and self.connects < MAX_CONNECTS:
            self.connects += 1
            url = self.route()
            try:
                async with (
                    httpx.AsyncClient(base_url=url, timeout=10) as http,
                    sse_events(http, self.last_id) as stream,
                ):
                    self.connected.append(url)
                    try:
                        await self._read(stream, stop)
                    finally:
                        self.last_id = stream.last_id or self.last_id
            except (httpx.HTTPError, OSError, EOFError, AssertionError):
                pass  # refused, reset, or ended: like EventSource, try again shortly
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), RECONNECT_AFTER_S)

    async def _read(self, stream, stop: asyncio.Event) -> None:  # type: ignore[no-untyped-def]
        while not stop.is_set():
            try:
                message = await stream.next(timeout=0.5)
            except TimeoutError:
                continue
            payload = message.payload
            if payload.get("user_id") != USER:
                self.foreign.append(str(payload.get("user_id")))
            assert message.id is not None
            self.received.append((message.id, payload["event_id"]))


async def publish_forever(r: Redis, stop: asyncio.Event, published: list[tuple[str, str]]) -> None:
    """A recording and its transcript every tick (another user's every third tick)."""
    for n in range(100_000):  # bounded; `stop` ends it
        if stop.is_set():
            return
        user = OTHER_USER if n % 3 == 2 else USER
        rid = f"sse-{n:05d}"
        done = RecordingCompleted(recording_id=rid, user_id=user, audio_uri="file:///x.wav")
        text = TranscriptReady(
            **done.follow_up(), text=f"note {n}", engine="faster-whisper", model="tiny.en",
            audio_duration_s=1.0, processing_s=0.1, real_time_factor=0.1,
        )  # fmt: skip
        await r.xadd(RECORDINGS, encode_entry(done))  # type: ignore[arg-type]
        await r.xadd(TRANSCRIPTS, encode_entry(text))  # type: ignore[arg-type]
        published.extend([(user, done.event_id), (user, text.event_id)])
        await asyncio.sleep(PUBLISH_EVERY_S)


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
async def test_sse_clients_resume_across_a_gateway_restart_and_a_failover(
    tmp_path: Path, how: str
) -> None:
    started = time.monotonic()
    with private_redis(tmp_path / "redis") as server:
        specs = Specs(write_config(tmp_path))
        stack = [specs.gateway("gateway-a"), specs.gateway("gateway-b")]
        running = await asyncio.to_thread(services(stack, tmp_path, server.url).start)
        try:
            a, b = running["gateway-a"].url, running["gateway-b"].url
            target = {"url": a}
            followers = [Follower(f"tab-{i}", lambda: target["url"]) for i in range(FOLLOWERS)]
            stop_reading, stop_publishing = asyncio.Event(), asyncio.Event()
            published: list[tuple[str, str]] = []  # (user, event id)
            r = Redis.from_url(server.url)
            readers = [asyncio.create_task(f.run(stop_reading)) for f in followers]
            publisher = asyncio.create_task(publish_forever(r, stop_publishing, published))
            downs: list[dict[str, object]] = []

            async def until(check: Callable[[], bool], timeout: float, what: str) -> None:
                deadline = time.monotonic() + timeout
                while not check():
                    assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f}s"
                    await asyncio.sleep(0.05)

            async def take_down_a() -> None:
                before = {f.name: len(f.received) for f in followers}
                t0 = time.monotonic()
                if how == "sigterm":
                    code = await asyncio.to_thread(running["gateway-a"].stop, GRACEFUL_STOP_S)
                else:
                    code = await asyncio.to_thread(running.kill, "gateway-a")
                downs.append({"how": how, "exit": code, "stop_s": round(time.monotonic() - t0, 1),
                              "seen_before": before})  # fmt: skip

            try:
                await until(lambda: all(f.received for f in followers), 30, "every tab live")
                await asyncio.sleep(1.0)

                # Phase 1: A restarts; the tabs come back to A.
                mark = {f.name: len(f.connected) for f in followers}
                await take_down_a()
                await asyncio.to_thread(running.restart, "gateway-a")
                await until(
                    lambda: all(len(f.connected) > mark[f.name] for f in followers),
                    30,
                    "every tab reconnected to the restarted gateway",
                )
                await asyncio.sleep(1.0)

                # Phase 2: A goes down for good; the balancer sends the tabs to B.
                target["url"] = b
                await take_down_a()
                await until(
                    lambda: all(f.connected[-1] == b for f in followers),
                    30,
                    "every tab reconnected to the other replica",
                )
                await asyncio.sleep(1.0)
            finally:
                stop_publishing.set()
                await publisher

            # Everything published is forwarded (B reclaims what A held), and every tab
            # catches up to the last of its user's snapshots.
            def forwarded() -> list[tuple[str, str]]:
                return [(i, u.event_id) for i, u in user_events(sync_client(server.url))
                        if u.user_id == USER]  # fmt: skip

            ours = {event_id for user, event_id in published if user == USER}
            deadline = time.monotonic() + CATCH_UP_TIMEOUT_S
            while True:
                now = forwarded()
                stored = {e for _i, e in now}
                tail = now[-1][0] if now else None
                caught_up = all(f.received and f.received[-1][0] == tail for f in followers)
                if ours <= stored and caught_up:
                    break
                assert time.monotonic() < deadline, (
                    f"not caught up in {CATCH_UP_TIMEOUT_S:.0f}s: {len(ours - stored)} of "
                    f"{len(ours)} never forwarded, tail {tail}, tabs at "
                    f"{[f.received[-1][0] if f.received else None for f in followers]}"
                )
                await asyncio.sleep(0.2)
            stop_reading.set()
            await asyncio.gather(*readers)
            await r.aclose()

            everything = forwarded()
            assert {e for _i, e in everything} == ours  # each once (a set hides nothing:
            assert len(everything) == len(ours)  # a second snapshot would count twice)
            for f in followers:
                first = f.received[0][0]
                expected = [item for item in everything if _key(item[0]) >= _key(first)]
                got = f.received
                dupes = len(got) - len(set(got))
                missing = [i for i in expected if i not in set(got)]
                assert not f.foreign, (f.name, f.foreign[:3])
                assert not dupes and not missing and got == expected, (
                    f"{f.name}: {len(got)} received, {len(expected)} expected, {dupes} twice, "
                    f"{len(missing)} missed (e.g. {missing[:3]}), connects {f.connects}"
                )
        finally:
            await asyncio.to_thread(running.stop)

    print(
        f"\n[gateway-restart {how}] {len(published) // 2} recordings published, "
        f"{len(everything)} user snapshots; each of {FOLLOWERS} tabs got all of its "
        f"{[len(f.received) for f in followers]} in order over "
        f"{[f.connects for f in followers]} connections; A down: "
        f"{[(d['exit'], d['stop_s']) for d in downs]}; total {time.monotonic() - started:.0f} s"
    )
    if how == "sigterm":
        # A deploy's SIGTERM: the gateway lets its SSE clients go and stops by itself.
        assert all(d["exit"] in (0, -15) for d in downs), downs


def _key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)
