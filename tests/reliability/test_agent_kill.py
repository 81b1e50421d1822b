"""SIGKILL the agent service while agent runs are in flight: exactly one answer per request.

The agent service runs as its own process on a `stub` provider: a local OpenAI-compatible
chat-completions server (tests/agents/chat_stub.py, real HTTP, in this test process) that
answers each request after `ANSWER_DELAY_S`, so a run is reliably mid-flight when the kill
lands. The test publishes `TranscriptReady` events that ask for an agent (the transcription
workers' part); the gateway stores what comes back.

Each round publishes a wave of requests, waits until the model server has one in hand,
sleeps a seeded random moment inside the answer delay, and SIGKILLs the agent service's
process group; it is started again through the harness. Before the next kill, every run
the dead process held is answered (by its reclaimer), so no entry is killed more often
than `bus.max_deliveries` allows and each must end as `AgentResponded`.

At the end, for every request: exactly one `AgentResponded` on whisp:responses, no
`AgentFailed`, and exactly one answer in the gateway's history.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.agents.chat_stub import ChatStub, Reply
from tests.reliability.rig import (
    USER,
    Specs,
    client,
    consumer_names,
    count_by_recording,
    env_flag,
    events,
    history,
    holders,
    pending_count,
    private_redis,
    services,
    wait_until,
    write_config,
)
from whisp_shared.codec import encode_entry
from whisp_shared.events import AgentFailed, AgentResponded, TranscriptReady
from whisp_shared.streams import AGENTS_GROUP, RESPONSES, TRANSCRIPTS

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

ROUNDS = env_flag("WHISP_RELIABILITY_AGENT_ROUNDS", 3)
WAVE = 3  # = agents.max_concurrency: the whole wave is in flight at once
ANSWER_DELAY_S = 1.0
SEED = 20261211
ANSWER = "Noted: call the dentist tomorrow morning."

REGISTRY = """\
id: answerer
description: Answers a dictated note.
instructions: Answer the note in one sentence.
"""


def agents_config(folder: Path, base_url: str) -> str:
    registry = folder / "agents"
    registry.mkdir(parents=True)
    (registry / "answerer.yaml").write_text(REGISTRY)
    return f"""\
agents:
  registry: [{registry}]
  default_provider: stub
  providers:
    stub: {{base_url: "{base_url}", model: stub-model, max_attempts: 1, timeout_s: 30}}
  local_llm: {{enabled: false}}
  max_concurrency: {WAVE}
"""


def request(n: int) -> TranscriptReady:
    return TranscriptReady(
        recording_id=f"agent-run-{n:03d}",
        user_id=USER,
        text=f"Remind me to call the dentist, note number {n}.",
        agent_id="answerer",
        engine="faster-whisper",
        model="tiny.en",
        audio_duration_s=2.0,
        processing_s=0.3,
        real_time_factor=0.15,
    )


def test_sigkill_the_agent_service_mid_run_exactly_one_answer_each(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    started = time.monotonic()
    with (
        ChatStub(default=Reply(text=ANSWER, delay_s=ANSWER_DELAY_S)) as stub,
        private_redis(tmp_path / "redis") as server,
    ):
        # A client killed mid-request leaves the stub a broken pipe: expected, not news.
        stub.server.handle_error = lambda *_args: None  # type: ignore[method-assign]
        specs = Specs(write_config(tmp_path, agents_config(tmp_path, stub.base_url)))
        r = client(server.url)
        with services([specs.agents(), specs.gateway()], tmp_path, server.url) as running:
            boot_s = running.ready_s
            agents = running["agents"]
            published: list[str] = []
            kills: list[dict[str, object]] = []
            for n in range(ROUNDS):
                seen_before = len(stub.completions)
                for _ in range(WAVE):
                    event = request(len(published))
                    r.xadd(TRANSCRIPTS, encode_entry(event))  # type: ignore[arg-type]
                    published.append(event.recording_id)
                wait_until(
                    lambda b=seen_before: len(stub.completions) > b, 30, "a run reaching the model"
                )
                delay = rng.uniform(0, ANSWER_DELAY_S * 0.8)
                time.sleep(delay)
                now = time.monotonic()
                in_flight = sum(now - s.at < ANSWER_DELAY_S for s in stub.completions)
                dead = consumer_names(agents)
                held = sum(n for c, n in holders(r, TRANSCRIPTS, AGENTS_GROUP).items() if c in dead)
                assert running.kill("agents") == -9
                kills.append({"round": n, "delay_s": round(delay, 2), "runs_in_flight": in_flight,
                              "entries_held": held})  # fmt: skip
                restarting = time.monotonic()
                agents = running.restart("agents")
                kills[-1]["restart_s"] = round(time.monotonic() - restarting, 1)

                def dead_ones_answered(names: set[str] = dead) -> bool:
                    # Taken over is not enough: a run reclaimed but still going when the next
                    # kill lands is killed again, and a third time would exhaust its deliveries.
                    held = holders(r, TRANSCRIPTS, AGENTS_GROUP)
                    answered = {e.recording_id for e in events(r, RESPONSES)}
                    return not any(c in names for c in held) and set(published) <= answered

                took = wait_until(dead_ones_answered, 60, "the killed runs answered")
                kills[-1]["takeover_s"] = round(took, 1)

            def all_answered() -> bool:
                answered = {e.recording_id for e in events(r, RESPONSES)}
                return set(published) <= answered

            wait_until(all_answered, 90, "an answer to every request")
            time.sleep(3.0)  # any second answer would have landed by now

            outcomes = events(r, RESPONSES)
            failed = count_by_recording(outcomes, AgentFailed)
            assert not failed, [e for e in outcomes if isinstance(e, AgentFailed)]
            answers = count_by_recording(outcomes, AgentResponded)
            assert answers == dict.fromkeys(published, 1), answers
            assert all(isinstance(e, AgentResponded) and e.output == ANSWER for e in outcomes)
            assert pending_count(r, TRANSCRIPTS, AGENTS_GROUP) == 0
            assert r.xlen(f"{TRANSCRIPTS}:dead") == 0

            # The user's history: each transcript once, with exactly one answer.
            wait_until(
                lambda: (
                    sum(len(i["answers"]) for i in history(running["gateway"].url))
                    >= len(published)
                ),
                30,
                "every answer in the history",
                0.5,
            )
            items = {i["recording_id"]: i for i in history(running["gateway"].url)}
            assert set(items) == set(published)
            per = Counter({rid: len(i["answers"]) for rid, i in items.items()})
            assert per == dict.fromkeys(published, 1), per

    killed_runs = sum(int(k["entries_held"]) for k in kills)  # type: ignore[call-overload]
    reruns = len(stub.completions) - len(published)
    print(
        f"\n[agent-kill] {ROUNDS} kills, {len(published)} requests, {killed_runs} runs held by "
        f"the killed process, {reruns} model requests re-sent, total "
        f"{time.monotonic() - started:.0f} s (boot {boot_s:.1f} s); kills: {kills}"
    )
    # Worth its time only if the kills hit runs in flight.
    assert killed_runs >= ROUNDS, kills
