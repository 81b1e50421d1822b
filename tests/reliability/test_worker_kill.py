"""SIGKILL a transcription worker at a random moment during a clip, 20 rounds: every
recording still ends with exactly one transcript.

The stack: Redis, the audio service, two workers, the gateway, each its own process. Each
round uploads two real spoken clips through the gateway (as a client does), waits until a
worker holds one, sleeps a seeded random moment inside a clip's transcription time, and
SIGKILLs whichever worker holds a clip then (its whole process group: no shutdown, no ack).
The killed worker is started again through the harness (a new PID, so a new consumer name)
before the next round. The clip it held is reclaimed after `CLAIM_IDLE_MS` by its peer or
its restarted self.

At the end, for every recording: exactly one `TranscriptReady` on whisp:transcripts (none
lost, none doubled, no `TranscriptionFailed`), its words right, one item in the gateway's
history, with that text, and exactly one snapshot forwarded to the user for it.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.reliability.rig import (
    CLAIM_IDLE_MS,
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
    user_events,
    wait_until,
    write_config,
)
from tests.support.speech import Utterance, word_error_rate
from tests.support.tools import needs_tools
from whisp_shared.events import TranscriptionFailed, TranscriptReady
from whisp_shared.streams import PRIORITY_RECORDINGS, TRANSCRIBERS_GROUP, TRANSCRIPTS

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(420),
    needs_tools("espeak-ng", "sox", why="real speech for the clips"),
]

ROUNDS = env_flag("WHISP_RELIABILITY_ROUNDS", 20)
SEED = 20261210
UPLOADS_PER_ROUND = 2
KILL_WINDOW_S = (0.0, 0.08)
"""When, after a worker took a clip, the kill lands: with the short-window decode a worker
needs ~0.1-0.3 s (fetch, decode, transcribe) for these 2-5 s clips on 2 busy cores, so
most kills land mid-clip."""
MAX_WER = 0.5  # the words must be the clip's, not another clip's (or a garbled half)
DRAIN_TIMEOUT_S = 120.0
SETTLE_S = 3 * CLAIM_IDLE_MS / 1000  # long enough for any duplicate to have landed


def test_sigkill_a_worker_mid_clip_every_recording_once(
    short_clips: list[tuple[Utterance, Path]], tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    started = time.monotonic()
    with private_redis(tmp_path / "redis") as server:
        specs = Specs(write_config(tmp_path))
        audio = specs.audio()
        workers = ["worker-1", "worker-2"]
        stack = [audio, *(specs.worker(w) for w in workers), specs.gateway(audio=audio)]
        r = client(server.url)
        with services(stack, tmp_path, server.url) as running:
            gateway = running["gateway"].url
            http = httpx.Client(base_url=gateway, timeout=30)
            expected: dict[str, str] = {}
            rounds: list[dict[str, object]] = []
            restarts: list[float] = []

            def owner_of(consumer: str) -> str | None:
                for name in workers:
                    if consumer in consumer_names(running[name]):
                        return name
                return None

            def held_by_live_workers() -> dict[str, int]:
                held: dict[str, int] = {}
                for consumer, n in holders(r, PRIORITY_RECORDINGS, TRANSCRIBERS_GROUP).items():
                    name = owner_of(consumer)
                    if name is not None:
                        held[name] = held.get(name, 0) + n
                return held

            for n in range(ROUNDS):
                for k in range(UPLOADS_PER_ROUND):
                    utterance, wav = short_clips[(n * UPLOADS_PER_ROUND + k) % len(short_clips)]
                    response = http.post(
                        "/api/recordings", files={"file": (wav.name, wav.read_bytes(), "audio/wav")}
                    )
                    assert response.status_code == 202, response.text
                    expected[response.json()["recording_id"]] = utterance.text
                wait_until(lambda: bool(held_by_live_workers()), 30, "a worker taking a clip", 0.01)
                delay = rng.uniform(*KILL_WINDOW_S)
                time.sleep(delay)
                held = held_by_live_workers()
                victim = rng.choice(sorted(held) or workers)
                code = running.kill(victim)
                rounds.append({"victim": victim, "delay_s": delay, "mid_clip": victim in held})
                assert code == -9, f"{victim} exited {code} before the kill"
                restarted = time.monotonic()
                running.restart(victim)
                restarts.append(time.monotonic() - restarted)

            def all_answered() -> bool:
                done = {e.recording_id for e in events(r, TRANSCRIPTS)}
                return set(expected) <= done

            try:
                drain_s = wait_until(all_answered, DRAIN_TIMEOUT_S, "every recording answered")
            except AssertionError:
                done = {e.recording_id for e in events(r, TRANSCRIPTS)}
                missing = sorted(set(expected) - done)
                pending = pending_count(r, PRIORITY_RECORDINGS, TRANSCRIBERS_GROUP)
                raise AssertionError(
                    f"{len(missing)} of {len(expected)} recordings never got a transcript: "
                    f"{missing[:5]}; pending {pending}"
                ) from None
            time.sleep(SETTLE_S)

            outcomes = events(r, TRANSCRIPTS)
            ready = count_by_recording(outcomes, TranscriptReady)
            failed = count_by_recording(outcomes, TranscriptionFailed)
            assert not failed, f"failures instead of transcripts: {dict(failed)}"
            doubled = {rid: c for rid, c in ready.items() if c != 1}
            assert not doubled, f"recordings with more than one transcript: {doubled}"
            assert set(ready) == set(expected)
            for event in outcomes:
                assert isinstance(event, TranscriptReady)
                wer = word_error_rate(expected[event.recording_id], event.text)
                assert wer <= MAX_WER, (event.recording_id, event.text, wer)
            assert pending_count(r, PRIORITY_RECORDINGS, TRANSCRIBERS_GROUP) == 0
            assert r.xlen(f"{PRIORITY_RECORDINGS}:dead") == 0

            # What the user sees: one history item per recording, with the worker's text...
            wait_until(
                lambda: sum(i["status"] == "done" for i in history(gateway)) >= len(expected),
                30,
                "every transcript in the history",
                0.5,
            )
            items = history(gateway)
            per_recording = {i["recording_id"]: i for i in items}
            assert len(items) == len(per_recording) == len(expected)
            texts = {e.recording_id: e.text for e in outcomes if isinstance(e, TranscriptReady)}
            for rid, item in per_recording.items():
                assert item["status"] == "done" and item["text"] == texts[rid], item
            # ...and one forwarded snapshot per transcript (a repeat would show twice live).
            ready_ids = {e.event_id for e in outcomes}
            forwarded = Counter(
                u.recording_id for _id, u in user_events(r) if u.event_id in ready_ids
            )
            assert forwarded == dict.fromkeys(expected, 1), forwarded
            logs = "".join(running[w].log_text() for w in workers)  # restarts append
            transcribed = logs.count('"event": "transcribed"')
            repeats = logs.count("duplicate delivery skipped")

    mid = sum(bool(x["mid_clip"]) for x in rounds)
    print(
        f"\n[worker-kill] {ROUNDS} rounds, {len(expected)} recordings, {mid} kills mid-clip "
        f"(the rest between clips), {transcribed - len(expected)} clips transcribed twice, "
        f"{repeats} redeliveries of finished work skipped, "
        f"restart {min(restarts):.1f}-{max(restarts):.1f} s, "
        f"drain {drain_s:.1f} s after the last kill, total {time.monotonic() - started:.0f} s"
    )
    # The test is only worth its time if the kills really hit work in hand.
    assert mid >= ROUNDS // 2, rounds
