"""The bus run's answer as it is written: `AnswerDelta`s on `whisp:live` (real Redis) while
the chat-completions stand-in streams slowly, then the stored `AgentResponded` unchanged.

Checked: pieces come in order, coalesced (fewer pieces than words), all before the final,
and they add up to it; a pipeline streams each stage as its own part; a run taken over
after its worker was SIGKILLed mid-answer streams again under a new run id from sequence
0; a `whisp:live` that refuses writes costs the deltas, never the answer."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from redis.asyncio import Redis

from tests.agents.chat_stub import ChatStub, Reply
from tests.agents.conftest import make_settings
from tests.agents.test_bus import _service, transcript, worker_config
from tests.integration.bus_helpers import stream_events, wait_for
from whisp_agent.answer_stream import FLUSH_INTERVAL_S
from whisp_agent.app import create_app
from whisp_shared.bus import EventBus
from whisp_shared.codec import decode_fields
from whisp_shared.config import BusSettings
from whisp_shared.events import AgentResponded
from whisp_shared.streams import LIVE, RESPONSES, TRANSCRIPTS
from whisp_shared.views import CLIENT_EVENT_ADAPTER, AnswerDelta

ANSWER = "the meeting moved to friday and bob books the small room for ten people"
WORDS = ANSWER.split(" ")
WORD_DELAY_S = 0.03  # ~33 words/s: a fast model, several words per 80 ms piece


async def live_deltas(redis: Redis) -> list[tuple[str, AnswerDelta]]:
    """(stream id, delta) of every answer delta on whisp:live, oldest first."""
    found = []
    for entry_id, fields in await redis.xrange(LIVE):
        event = decode_fields(fields, CLIENT_EVENT_ADAPTER)
        if isinstance(event, AnswerDelta):
            found.append((entry_id.decode(), event))
    return found


def stream_id(entry_id: str) -> tuple[int, int]:
    ms, seq = entry_id.split("-")
    return int(ms), int(seq)


async def answered(redis: Redis, n: int = 1) -> list[AgentResponded]:
    async def enough() -> bool:
        return len(await redis.xrange(RESPONSES)) >= n

    await wait_for(enough, timeout=20)
    events = await stream_events(redis, RESPONSES)
    assert all(isinstance(e, AgentResponded) for e in events), events
    return events  # type: ignore[return-value]


async def test_deltas_come_in_order_coalesced_before_the_final_and_add_up_to_it(
    tmp_path: Path, bus_settings: BusSettings, redis: Redis, chat_stub: ChatStub
) -> None:
    chat_stub.default = Reply(text=ANSWER, word_delay_s=WORD_DELAY_S)
    bus = EventBus(bus_settings.model_copy(update={"claim_idle_ms": 10_000}))
    app = create_app(make_settings(tmp_path, chat_stub.base_url), bus)
    async with app.router.lifespan_context(app):
        await bus.publish(TRANSCRIPTS, transcript("rec-1", agent_id="expert"))
        [final] = await answered(redis)
    final_id = (await redis.xrange(RESPONSES))[0][0].decode()
    deltas = await live_deltas(redis)

    pieces = [d for _id, d in deltas]
    assert [d.sequence for d in pieces] == list(range(len(pieces)))
    assert {(d.recording_id, d.user_id, d.agent_id, d.part) for d in pieces} == {
        ("rec-1", "alice", "expert", 0)
    }
    assert len({d.run_id for d in pieces}) == 1
    assert "".join(d.delta for d in pieces) == final.output == ANSWER
    # Coalesced: 14 words in ~0.4 s make a handful of pieces, not one per word...
    streamed_s = len(WORDS) * WORD_DELAY_S
    assert 2 <= len(pieces) <= streamed_s / FLUSH_INTERVAL_S + 2, [d.delta for d in pieces]
    # ...and the first went out with the first words, long before the answer was whole.
    assert len(pieces[0].delta.split()) <= 4, pieces[0].delta
    # Every piece is on the bus before the stored answer.
    assert all(stream_id(i) <= stream_id(final_id) for i, _d in deltas)
    assert all(d.created_at <= final.created_at for d in pieces)


async def test_a_pipeline_streams_each_stage_as_its_own_part(
    tmp_path: Path, bus_settings: BusSettings, redis: Redis, chat_stub: ChatStub
) -> None:
    chat_stub.push(
        Reply(text="first stage words", word_delay_s=0.01),
        Reply(text="second stage words", word_delay_s=0.01),
        Reply(text="the final answer of three", word_delay_s=0.01),
    )
    bus = EventBus(bus_settings.model_copy(update={"claim_idle_ms": 10_000}))
    app = create_app(make_settings(tmp_path, chat_stub.base_url), bus)
    async with app.router.lifespan_context(app):
        await bus.publish(TRANSCRIPTS, transcript("rec-p", pipeline="three", text="notes"))
        [final] = await answered(redis)
    pieces = [d for _id, d in await live_deltas(redis)]

    assert [d.sequence for d in pieces] == list(range(len(pieces)))
    parts: dict[int, tuple[str, str]] = {}
    for d in pieces:
        agent, text = parts.get(d.part, (d.agent_id, ""))
        assert agent == d.agent_id
        parts[d.part] = (agent, text + d.delta)
    assert parts == {
        0: ("stage_a", "first stage words"),
        1: ("stage_b", "second stage words"),
        2: ("stage_c", "the final answer of three"),
    }
    assert final.pipeline == "three" and final.output == parts[2][1]


async def test_a_taken_over_run_streams_again_under_a_new_run_id(
    tmp_path: Path, redis_server: object, redis: Redis, chat_stub: ChatStub
) -> None:
    url = redis_server.url  # type: ignore[attr-defined]
    config = worker_config(tmp_path, chat_stub)
    doomed_words = " ".join(f"doomed{i}" for i in range(60))
    chat_stub.push(Reply(text=doomed_words, word_delay_s=0.1))  # ~6 s: killed long before
    chat_stub.default = Reply(text="the answer that survived", word_delay_s=0.02)
    doomed = _service(config, url)
    try:
        bus = EventBus(BusSettings(redis_url=url))
        await bus.connect()
        await bus.publish(TRANSCRIPTS, transcript("rec-kill", agent_id="expert"))
        await bus.stop()

        async def streaming() -> bool:
            return len(await live_deltas(redis)) >= 2

        await wait_for(streaming, timeout=60)  # a cold service start on 2 busy cores
        os.killpg(doomed.pid, signal.SIGKILL)  # mid-answer: pieces are already out
        doomed.wait()
        # The peer that takes the run over (in this process: it starts in a moment).
        peer = EventBus(BusSettings(redis_url=url, claim_idle_ms=600, read_block_ms=100))
        app = create_app(make_settings(tmp_path / "peer", chat_stub.base_url), peer)
        async with app.router.lifespan_context(app):
            [final] = await answered(redis)
    finally:
        if doomed.poll() is None:
            os.killpg(doomed.pid, signal.SIGKILL)
            doomed.wait()
    pieces = [d for _id, d in await live_deltas(redis)]
    runs = list(dict.fromkeys(d.run_id for d in pieces))
    assert len(runs) == 2, [(d.run_id[:6], d.sequence, d.delta) for d in pieces]
    first = [d for d in pieces if d.run_id == runs[0]]
    second = [d for d in pieces if d.run_id == runs[1]]
    assert "".join(d.delta for d in first).startswith("doomed0 doomed1")
    # The new run starts over: its own sequence from 0, and the whole answer on its own.
    assert [d.sequence for d in second] == list(range(len(second)))
    assert "".join(d.delta for d in second) == final.output == "the answer that survived"


async def test_a_live_stream_that_refuses_writes_costs_the_deltas_not_the_answer(
    tmp_path: Path, bus_settings: BusSettings, redis: Redis, chat_stub: ChatStub
) -> None:
    await redis.set(LIVE, "not a stream")  # every XADD to it fails with WRONGTYPE
    chat_stub.default = Reply(text=ANSWER, word_delay_s=0.005)
    bus = EventBus(bus_settings.model_copy(update={"claim_idle_ms": 10_000}))
    app = create_app(make_settings(tmp_path, chat_stub.base_url), bus)
    async with app.router.lifespan_context(app):
        await bus.publish(TRANSCRIPTS, transcript("rec-x", agent_id="expert"))
        [final] = await answered(redis)
    assert final.output == ANSWER
    assert await redis.get(LIVE) == b"not a stream"
    assert len(chat_stub.completions) == 1  # answered on the first delivery, not retried
