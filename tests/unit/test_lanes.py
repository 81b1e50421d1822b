"""The priority lane's slots: clips first, uploads never starved, bulk capped, cancels clean."""

from __future__ import annotations

import asyncio

import pytest

from whisp_shared.lanes import Lane, Lanes


class Jobs:
    """Jobs that hold their slot until released, recording the order they started in."""

    def __init__(self, lanes: Lanes) -> None:
        self.lanes = lanes
        self.started: list[str] = []
        self.gates: dict[str, asyncio.Event] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}

    def submit(self, name: str, lane: Lane) -> None:
        self.gates[name] = asyncio.Event()

        async def job() -> None:
            async with self.lanes.slot(lane):
                self.started.append(name)
                await self.gates[name].wait()

        self.tasks[name] = asyncio.create_task(job())

    async def finish(self, name: str) -> None:
        self.gates[name].set()
        await self.tasks[name]
        await asyncio.sleep(0)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_waiting_clip_gets_the_next_slot_before_earlier_uploads() -> None:
    jobs = Jobs(Lanes(slots=1))
    jobs.submit("upload-1", "bulk")
    await settle()
    jobs.submit("upload-2", "bulk")
    jobs.submit("upload-3", "bulk")
    jobs.submit("clip", "priority")
    await settle()
    assert jobs.started == ["upload-1"]
    await jobs.finish("upload-1")
    await settle()
    assert jobs.started == ["upload-1", "clip"]
    await jobs.finish("clip")
    await jobs.finish("upload-2")
    await jobs.finish("upload-3")
    assert jobs.started == ["upload-1", "clip", "upload-2", "upload-3"]


async def test_uploads_get_a_slot_after_max_streak_clips() -> None:
    lanes = Lanes(slots=1, max_streak=2)
    jobs = Jobs(lanes)
    jobs.submit("c0", "priority")
    await settle()
    jobs.submit("upload", "bulk")
    for n in range(1, 5):
        jobs.submit(f"c{n}", "priority")
    await settle()
    for name in ("c0", "c1", "c2", "upload", "c3", "c4"):
        await settle()
        assert jobs.started[-1] == name
        await jobs.finish(name)
    assert lanes.busy == 0


async def test_bulk_share_keeps_a_slot_free_for_clips() -> None:
    lanes = Lanes(slots=4, bulk_share=0.75)
    jobs = Jobs(lanes)
    for n in range(6):
        jobs.submit(f"u{n}", "bulk")
    await settle()
    assert jobs.started == ["u0", "u1", "u2"]
    jobs.submit("clip", "priority")
    await settle()
    assert jobs.started[-1] == "clip"  # no wait for an upload to end
    assert lanes.waiting("bulk") == 3
    for name in ["u0", "u1", "u2", "clip"]:
        await jobs.finish(name)
    await settle()
    assert sorted(jobs.started[4:]) == ["u3", "u4", "u5"]
    for name in ["u3", "u4", "u5"]:
        await jobs.finish(name)
    assert lanes.busy == 0


async def test_a_cancelled_waiter_gives_its_turn_away() -> None:
    lanes = Lanes(slots=1)
    jobs = Jobs(lanes)
    jobs.submit("running", "bulk")
    await settle()
    jobs.submit("gone", "priority")
    jobs.submit("next", "priority")
    await settle()
    jobs.tasks["gone"].cancel()
    await settle()
    await jobs.finish("running")
    await settle()
    assert jobs.started == ["running", "next"]
    await jobs.finish("next")
    assert lanes.busy == 0
    assert lanes.waiting("priority") == 0


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="slots"):
        Lanes(slots=0)
    with pytest.raises(ValueError, match="bulk_share"):
        Lanes(slots=2, bulk_share=0)


async def test_wrap_runs_the_handler_in_a_slot() -> None:
    lanes = Lanes(slots=1)
    seen: list[int] = []

    async def handler(n: int) -> int:
        seen.append(lanes.busy)
        return n * 2

    assert await lanes.wrap("priority", handler)(21) == 42
    assert seen == [1]
    assert lanes.busy == 0
