"""Where a recording waits in the transcription queue, as the CLI shows it: the real gateway,
audio service and Redis with no transcription worker (tests.gateway.services), the CLI's
own `EventFeed` and turns following two uploads. A worker is played by hand: it takes a
clip off the stream (XREADGROUP, as a worker does) and later publishes its transcript.

Also the words `whisp record` draws for a place (position, estimate, "at least", no worker)."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import threading
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import numpy as np
import pytest
from redis.asyncio import Redis

from tests.gateway import conftest as gateway_fixtures
from tests.gateway.conftest import GatewayFactory, add_users
from tests.gateway.services import stack as services_stack
from tests.integration.bus_helpers import transcript_for
from whisp_cli.desk.capture import Capture
from whisp_cli.desk.events import EventFeed
from whisp_cli.desk.gateway import GatewayClient
from whisp_cli.desk.turn import Phase, Turn, TurnDeps, in_line, start_turn
from whisp_cli.hotkey.daemon import DaemonOptions, HotkeyDaemon, Output
from whisp_cli.hotkey.deliver import Delivery
from whisp_cli.record.view import doing
from whisp_recorder import Recording
from whisp_recorder.file_source import FileReplaySource
from whisp_shared.bus import EventBus
from whisp_shared.bus_group import ensure_group
from whisp_shared.codec import decode_entry
from whisp_shared.config import BusSettings
from whisp_shared.options import RecordingOptions
from whisp_shared.queue import QueuePosition
from whisp_shared.streams import PRIORITY_RECORDINGS, TRANSCRIBERS_GROUP, TRANSCRIPTS

gateway = gateway_fixtures.gateway  # the real gateway on real HTTP, as tests/gateway use it
sqlite_url = gateway_fixtures.sqlite_url
publisher = gateway_fixtures.publisher

Entries = list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]]


def one_second() -> Recording:
    """A 1 s 440 Hz tone, as the recorder hands a finished press over."""
    t = np.arange(16_000, dtype=np.float32) / 16_000
    samples = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    return Recording(samples=samples, started_at=datetime.now(UTC), stopped_by="stop")


class Places:
    """Each turn's place every time it changes, and what `whisp record` drew for it then."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.positions: dict[int, list[int | None]] = defaultdict(list)
        self.drawn: dict[int, list[str]] = defaultdict(list)

    def __call__(self, turn: Turn) -> None:
        """On the turn's thread (`TurnDeps.on_change`)."""
        position = turn.queue.position if turn.queue is not None else None
        with self._lock:
            said = self.positions[turn.number]
            if (said[-1] if said else None) != position:
                said.append(position)
                self.drawn[turn.number].append(doing(turn))


async def until(condition: Callable[[], bool], what: str, timeout_s: float = 15.0) -> None:
    """Poll `condition` (set by other threads) without blocking the gateway's event loop."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {timeout_s} s: {what}")
        await asyncio.sleep(0.05)


async def take_one(redis: Redis, expected: str) -> None:
    """A worker takes the next clip off the priority lane; it must be `expected`."""
    taken = cast(
        Entries,
        await redis.xreadgroup(TRANSCRIBERS_GROUP, "worker-1", {PRIORITY_RECORDINGS: ">"}, count=1),
    )
    ((_stream, [(_id, fields)]),) = taken
    assert decode_entry(fields).recording_id == expected


async def transcribe(redis: Redis, bus: EventBus, recording_id: str, text: str) -> None:
    """The worker's answer for a clip it took (`take_one`): its transcript on the bus."""
    entries = cast(list[tuple[bytes, dict[bytes, bytes]]], await redis.xrange(PRIORITY_RECORDINGS))
    (made,) = [e for _, f in entries if (e := decode_entry(f)).recording_id == recording_id]
    await bus.publish(TRANSCRIPTS, transcript_for(made, text))


async def test_turns_see_their_place_until_a_worker_takes_them(
    gateway: GatewayFactory, bus_settings: BusSettings, redis: Redis, publisher: EventBus,
    sqlite_url: str, tmp_path: Path,
) -> None:  # fmt: skip
    tokens = await add_users(sqlite_url, "alice")
    places, out = Places(), io.StringIO()
    with services_stack(gateway, bus_settings, tmp_path) as services:
        url, token = services.gateway, tokens["alice"]
        feed = EventFeed(url, token)
        await asyncio.to_thread(feed.start)
        client = GatewayClient(url, token)
        daemon = HotkeyDaemon(
            Capture(FileReplaySource(b"")),  # never opened: these turns were recorded already
            TurnDeps(client, feed, RecordingOptions()),
            Delivery(clipboard=False, notify=False),
            Output(out, out),
            DaemonOptions(),
        )

        def changed(turn: Turn) -> None:
            places(turn)
            daemon._turn_changed(turn)  # what `whisp hotkey` prints for the same turns

        deps = dataclasses.replace(daemon.deps, on_change=changed, transcript_timeout_s=60)
        turns = [Turn(number=n, duration_s=1.0, stopped_at=0.0) for n in (1, 2)]
        try:
            for turn in turns:  # one after the other: the first is 1st in line
                start_turn(turn, one_second(), deps)
                await until(lambda turn=turn: turn.queue is not None, f"#{turn.number} placed")
            first, second = turns
            assert first.recording_id and second.recording_id
            assert (first.phase, second.phase) == (Phase.TRANSCRIBING, Phase.TRANSCRIBING)

            await ensure_group(redis, PRIORITY_RECORDINGS, TRANSCRIBERS_GROUP)
            await take_one(redis, first.recording_id)
            await until(lambda: first.queue is None and second.queue is not None
                        and second.queue.position == 1, "the second moved up")  # fmt: skip
            assert first.phase is Phase.TRANSCRIBING and not first.done.is_set()

            await transcribe(redis, publisher, first.recording_id, "first words")
            await asyncio.to_thread(first.done.wait, 15)
            await take_one(redis, second.recording_id)
            await until(lambda: second.queue is None, "a worker took the second")
            await transcribe(redis, publisher, second.recording_id, "second words")
            await asyncio.to_thread(second.done.wait, 15)
        finally:
            feed.close()
            client.close()

    assert [(t.phase, t.transcript, t.queue) for t in turns] == [
        (Phase.DONE, "first words", None),
        (Phase.DONE, "second words", None),
    ]
    assert places.positions == {1: [1, None], 2: [2, 1, None]}
    alone = "(1.0 s of audio)"
    assert places.drawn[1] == [
        f"#1 queued: next in line, no worker running {alone}",
        f"#1 transcribing… {alone}",
    ]
    assert places.drawn[2][0] == f"#2 queued: 2nd in line, no worker running {alone}"
    assert places.drawn[2][-1] == f"#2 transcribing… {alone}"
    # The hotkey daemon: nothing for the clip nobody waited before, one line for the other
    # when its place was first known (not when it moved up), one when a worker took it.
    lines = out.getvalue().splitlines()
    assert [line for line in lines if not line.startswith("transcript:")] == [
        "queued: 2nd in line, no worker running",
        "a worker took it; transcribing…",
    ]
    assert [line for line in lines if line.startswith("transcript:")] == [
        "transcript: first words",
        "transcript: second words",
    ]


def place(
    position: int, *, workers: int = 1, eta_s: float | None = None, at_least: bool = False
) -> QueuePosition:
    ahead = position - 1
    return QueuePosition(
        recording_id="r1", lane="priority", position=position, ahead=ahead,
        at_least=at_least, workers=workers, eta_s=eta_s,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("where", "words"),
    [
        (place(1), "next in line"),
        (place(3, eta_s=7.6), "3rd in line, ~8 s"),
        (place(2, eta_s=0.2), "2nd in line, ~1 s"),
        (place(12, eta_s=150), "12th in line, ~2 min"),
        (place(22, eta_s=40), "22nd in line, ~40 s"),
        (place(51, eta_s=40, at_least=True), "at least 51st in line, over 40 s"),
        (place(4, workers=0), "4th in line, no worker running"),
        (place(111, workers=0, at_least=True), "at least 111th in line, no worker running"),
    ],
)
def test_a_place_in_few_words(where: QueuePosition, words: str) -> None:
    assert in_line(where) == words


def test_the_record_view_shows_the_place_while_queued_then_transcribing() -> None:
    turn = Turn(number=3, duration_s=1.24, stopped_at=0.0, phase=Phase.TRANSCRIBING)
    turn.queue = place(3, eta_s=8)
    assert doing(turn) == "#3 queued: 3rd in line, ~8 s (1.2 s of audio)"
    turn.queue = None
    assert doing(turn) == "#3 transcribing… (1.2 s of audio)"
