"""Load test: 100 users on the real stack, each holding an SSE stream and uploading clips.

`whisp up --workers 2` runs the whole stack as separate processes on loopback (Redis, the
audio service, two tiny.en workers, the local model server, agents, gateway). 100 users
are created in the stack's gateway database before it starts. Each simulated user opens
`GET /api/events` with its own Bearer token, then uploads its clips
(`POST /api/recordings`, multipart, no `wait`) at seeded random moments spread over
SPREAD_S seconds. The clips are real espeak-ng sentences (1-3 s), two different ones per
user, so a transcript that reached the wrong user *or* carried another recording's audio
shows.

Checked: every upload is accepted; every user receives exactly one "stored" snapshot
(status processing) and one "transcribed" snapshot (status done) for each of its own
recordings and no snapshot of anyone else;
no SSE id repeats on a stream; each transcript is the sentence its own clip spoke.

Reported in tests/bench/results/gateway_load.json (+ gateway_load.png): upload request
time, upload accepted -> the transcribed snapshot on the SSE stream, upload start -> transcript,
the worker's own processing time, p50/p90/p99, throughput, and each service's resident
memory before and after (asserted to stay within 2.5x or +RSS_GROWTH_MB).

Bounded: loopback only, fixed numbers, hard timeouts, the stack stopped with SIGINT in
`finally`. On 2 cores the run is transcription-bound (~2.5 min in all: the stack starts in
~15 s, the uploads take 25 s, the backlog of 200 clips drains for ~1.5 min after).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import resource
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.bench._procs import CpuWatch, vm_status_mb
from tests.support.processes import WhispUp
from tests.support.speech import SENTENCES, duration_s, synthesize, word_error_rate
from whisp_gateway.repository import SqlRepository

pytestmark = [pytest.mark.bench, pytest.mark.timeout(420)]

USERS = 100
CLIPS_PER_USER = 2
CLIP_IDS = ("dentist", "kitchen-lights")  # 2.5 s and 2.8 s with their 0.3 s padding
SPREAD_S = 25.0  # uploads start at seeded random moments in [0, SPREAD_S)
WORKERS = 2
CONNECT_TIMEOUT_S = 30.0
# On 2 cores the stack transcribes ~1.5-2 such clips/s, while the users offer ~8/s: the
# backlog drains for ~1.5 min after the last upload. Waiting stops when everything has
# arrived, when nothing new arrived for STALL_S (a loss, not a queue), or at the cap.
DELIVERY_TIMEOUT_S = 150.0  # after the last upload was accepted
STALL_S = 30.0
SETTLE_S = 2.0  # listen on after the last expected event: a late duplicate would show
RSS_GROWTH_MB = 250
"""The most a service may grow during the run (workers warm their model's arenas)."""
RESULTS = Path(__file__).parent / "results"
INHERIT_NOT = ("REDIS_URL", "DATABASE_URL")  # the stack runs its own Redis and database


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def q(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, round(p * (len(ordered) - 1)))], 1)

    return {
        "n": len(ordered),
        "min": round(ordered[0], 1),
        "p50": q(0.50),
        "p90": q(0.90),
        "p99": q(0.99),
        "max": round(ordered[-1], 1),
        "mean": round(sum(ordered) / len(ordered), 1),
    }


# --- the stack -------------------------------------------------------------------------


async def make_users(db: Path, n: int) -> list[tuple[str, str, str]]:
    """(user_id, name, token) for n users, straight into the stack's gateway database."""
    repo = SqlRepository(f"sqlite+aiosqlite:///{db}")
    await repo.create_schema()
    users = []
    try:
        for i in range(n):
            user, token = await repo.add_user(f"load-{i:03d}")
            users.append((user.id, user.name, token))
    finally:
        await repo.close()
    return users


# --- one simulated user --------------------------------------------------------------------


@dataclass
class Upload:
    user_id: str
    clip: str
    planned_at: float
    started: float = 0.0
    accepted: float = 0.0
    status: int = 0
    recording_id: str = ""
    error: str = ""


@dataclass
class Received:
    at: float  # time.monotonic() on arrival
    wall: float  # time.time() on arrival: compared with the event's created_at and SSE id
    sse_id: str | None
    type: str
    data: dict[str, Any]


@dataclass
class User:
    id: str
    name: str
    token: str
    uploads: list[Upload] = field(default_factory=list)
    events: list[Received] = field(default_factory=list)
    queued_events: int = 0
    """Live `recording.queued` updates (a waiting clip's place in the queue): counted only."""
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    status: int = 0

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


KIND_OF_STATUS = {"processing": "stored", "done": "transcribed", "failed": "failed"}


QUEUED = "recording.queued"


def received(sse_id: str | None, event: str, payload: dict[str, Any]) -> Received:
    """One snapshot as the stage it reports: stored (processing), transcribed, failed. The
    data is the transcript plus the snapshot's owner and the source event's time."""
    assert event == "transcript.updated", event
    transcript = payload["transcript"]
    data = {**transcript, "user_id": payload["user_id"], "created_at": payload["created_at"]}
    kind = KIND_OF_STATUS[transcript["status"]]
    return Received(time.monotonic(), time.time(), sse_id, kind, data)


async def listen(client: httpx.AsyncClient, user: User, changed: asyncio.Event) -> None:
    """Hold the user's SSE stream and record every event with its arrival time."""
    async with client.stream("GET", "/api/events", headers=user.headers) as response:
        user.status = response.status_code
        user.connected.set()
        if response.status_code != 200:
            return
        sse_id = event = None
        data: list[str] = []
        async for line in response.aiter_lines():
            if line == "":
                if data and event == QUEUED:
                    user.queued_events += 1
                elif data:
                    user.events.append(
                        received(sse_id, event or "message", json.loads("\n".join(data)))
                    )
                    changed.set()
                sse_id = event = None
                data = []
            elif line.startswith("id:"):
                sse_id = line[3:].strip()
            elif line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))


async def upload(
    client: httpx.AsyncClient, user: User, item: Upload, audio: bytes, t0: float
) -> None:
    await asyncio.sleep(max(0.0, t0 + item.planned_at - time.monotonic()))
    item.started = time.monotonic()
    try:
        response = await client.post(
            "/api/recordings",
            headers=user.headers,
            files={"file": (f"{item.clip}.wav", audio, "audio/wav")},
        )
    except httpx.HTTPError as exc:
        item.error = repr(exc)
        return
    finally:
        item.accepted = time.monotonic()
    item.status = response.status_code
    if response.status_code == 202:
        item.recording_id = response.json()["recording_id"]
    else:
        item.error = response.text[:300]


# --- the test ----------------------------------------------------------------------------


async def test_100_users_upload_and_stream(tmp_path: Path) -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))  # inherited below

    clips: dict[str, bytes] = {}
    texts: dict[str, str] = {}
    clip_s: dict[str, float] = {}
    for utterance in SENTENCES:
        if utterance.id in CLIP_IDS:
            path = synthesize(utterance, tmp_path / "speech")
            clip_s[utterance.id] = round(duration_s(path), 2)
            assert 1.0 <= clip_s[utterance.id] <= 3.0, (utterance.id, clip_s)
            clips[utterance.id] = path.read_bytes()
            texts[utterance.id] = utterance.text

    (tmp_path / "data").mkdir()
    made = await make_users(tmp_path / "data" / "gateway.db", USERS)
    users = {uid: User(uid, name, token) for uid, name, token in made}
    rng = random.Random(20261)
    for index, user in enumerate(users.values()):
        for n in range(CLIPS_PER_USER):
            clip = CLIP_IDS[(index + n) % len(CLIP_IDS)]
            user.uploads.append(Upload(user.id, clip, rng.uniform(0, SPREAD_S)))
    all_uploads = [u for user in users.values() for u in user.uploads]

    stack = WhispUp(tmp_path / "data", tmp_path / "logs", workers=WORKERS, unset=INHERIT_NOT)
    stack.start()
    changed = asyncio.Event()
    listeners: list[asyncio.Task[None]] = []
    try:
        started_at = time.monotonic()
        banner = await asyncio.to_thread(stack.wait_up)
        stack_start_s = time.monotonic() - started_at
        names = re.findall(r"^\W*(transcription-\d+)\b", banner, re.M)
        assert len(names) == WORKERS, banner

        limits = httpx.Limits(max_connections=USERS + 20, max_keepalive_connections=0)
        async with (
            httpx.AsyncClient(base_url=stack.url, timeout=None, limits=limits) as sse,
            httpx.AsyncClient(
                base_url=stack.url, timeout=httpx.Timeout(30.0), limits=limits
            ) as api,
        ):
            listeners = [asyncio.create_task(listen(sse, u, changed)) for u in users.values()]
            await asyncio.wait_for(
                asyncio.gather(*(u.connected.wait() for u in users.values())), CONNECT_TIMEOUT_S
            )
            assert {u.status for u in users.values()} == {200}
            await asyncio.sleep(1.0)  # every subscription registered before the first upload

            pids = [int(p) for p in re.findall(r"^\W*\S+\s+\W*(\d+)\s", banner, re.M)]
            cpu = CpuWatch([stack.pid, *pids])  # ours: this process and the stack
            cpu_before = cpu.snapshot()
            rss_before = {pid: vm_status_mb(pid)["VmRSS"] for pid in pids}

            t0 = time.monotonic()
            await asyncio.wait_for(
                asyncio.gather(
                    *(
                        upload(api, user, item, clips[item.clip], t0)
                        for user in users.values()
                        for item in user.uploads
                    )
                ),
                SPREAD_S + 60,
            )
            uploads_done = time.monotonic()

            def missing() -> int:
                got = {
                    e.data.get("recording_id")
                    for u in users.values()
                    for e in u.events
                    if e.type in ("transcribed", "failed")
                }
                return sum(1 for u in all_uploads if u.recording_id and u.recording_id not in got)

            deadline = uploads_done + DELIVERY_TIMEOUT_S
            last_progress, left = time.monotonic(), missing()
            while left and time.monotonic() < min(deadline, last_progress + STALL_S):
                changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), 1.0)
                if (now_left := missing()) < left:
                    last_progress, left = time.monotonic(), now_left
            all_delivered = time.monotonic()
            await asyncio.sleep(SETTLE_S)
            cpu_others = cpu.others_cores(cpu_before)
            rss_after = {pid: vm_status_mb(pid)["VmRSS"] for pid in pids}
            # Anything still missing: stored by the gateway (lost on the way to the
            # client) or not (still queued or dropped before the gateway)?
            stored_but_not_streamed = []
            for item in all_uploads:
                if item.recording_id and not any(
                    e.data.get("recording_id") == item.recording_id and e.type == "transcribed"
                    for e in users[item.user_id].events
                ):
                    response = await api.get(
                        f"/api/transcripts/{item.recording_id}",
                        headers=users[item.user_id].headers,
                    )
                    if response.status_code == 200 and response.json()["status"] == "done":
                        stored_but_not_streamed.append(item.recording_id)
    finally:
        for task in listeners:
            task.cancel()
        await asyncio.gather(*listeners, return_exceptions=True)
        code = await asyncio.to_thread(stack.stop)
    assert code == 0, stack.output[-3000:]

    # --- what arrived -----------------------------------------------------------------------
    owner = {u.recording_id: u for u in all_uploads if u.recording_id}
    failed_uploads = [u for u in all_uploads if u.status != 202]
    misdelivered: list[tuple[str, str]] = []
    duplicates: list[tuple[str, str]] = []
    lost_transcripts: list[str] = []
    lost_completed: list[str] = []
    wrong_text: list[tuple[str, str, str]] = []
    failures: list[dict[str, Any]] = []
    upload_ms, accepted_to_ready_ms, start_to_ready_ms, processing_ms = [], [], [], []
    accepted_to_completed_ms, wers = [], []
    persist_hop_ms, fan_out_ms = [], []  # worker's event -> user-events XADD -> SSE client
    ready_times: list[float] = []
    for user in users.values():
        own = {u.recording_id for u in user.uploads if u.recording_id}
        sse_ids = Counter(e.sse_id for e in user.events)
        duplicates += [(user.name, i) for i, n in sse_ids.items() if n > 1 or i is None]
        per_type: dict[str, Counter[str]] = defaultdict(Counter)
        for e in user.events:
            rid = e.data.get("recording_id", "")
            if rid not in own or e.data.get("user_id") != user.id:
                misdelivered.append((user.name, rid))
                continue
            per_type[e.type][rid] += 1
            item = owner[rid]
            if e.type == "transcribed":
                accepted_to_ready_ms.append((e.at - item.accepted) * 1000)
                start_to_ready_ms.append((e.at - item.started) * 1000)
                processing_ms.append(float(e.data["processing_s"] or 0) * 1000)
                created = datetime.fromisoformat(e.data["created_at"]).timestamp()
                forwarded = int((e.sse_id or "0-0").split("-")[0]) / 1000  # Redis id: ms
                persist_hop_ms.append((forwarded - created) * 1000)
                fan_out_ms.append((e.wall - forwarded) * 1000)
                ready_times.append(e.at)
                wer = word_error_rate(texts[item.clip], e.data.get("text", ""))
                other = next(c for c in CLIP_IDS if c != item.clip)
                wers.append(wer)
                if wer >= word_error_rate(texts[other], e.data.get("text", "")):
                    wrong_text.append((user.name, item.clip, e.data.get("text", "")))
            elif e.type == "stored":
                accepted_to_completed_ms.append((e.at - item.accepted) * 1000)
            elif e.type == "failed":
                failures.append(e.data)
        for rid in own:
            for kind, lost in (
                ("transcribed", lost_transcripts),
                ("stored", lost_completed),
            ):
                if per_type[kind][rid] == 0:
                    lost.append(rid)
                elif per_type[kind][rid] > 1:
                    duplicates.append((user.name, f"{kind} {rid}"))
        for u in user.uploads:
            upload_ms.append((u.accepted - u.started) * 1000)

    first_start = min(u.started for u in all_uploads)
    last_start = max(u.started for u in all_uploads)
    window_s = (max(ready_times) - first_start) if ready_times else float("nan")
    result = {
        "setup": {
            "users": USERS,
            "sse_streams": USERS,
            "clips_per_user": CLIPS_PER_USER,
            "clip_s": clip_s,
            "spread_s": SPREAD_S,
            "transcription_workers": WORKERS,
            "model": "tiny.en int8, 1 thread per worker",
            "cpus": os.cpu_count(),
            "stack_start_s": round(stack_start_s, 1),
            "cpu_cores_taken_by_other_programs": cpu_others,
            "rss_mb_before_after_by_pid": {
                str(pid): [rss_before[pid], rss_after[pid]] for pid in rss_before
            },
        },
        "uploads": {
            "sent": len(all_uploads),
            "accepted_202": len(all_uploads) - len(failed_uploads),
            "failed": [(u.status, u.error) for u in failed_uploads][:10],
        },
        "delivery": {
            "transcript_ready_expected": len(owner),
            "transcript_ready_received": len(accepted_to_ready_ms),
            "lost_transcript_ready": len(lost_transcripts),
            "lost_recording_completed": len(lost_completed),
            "missing_but_stored_by_gateway": len(stored_but_not_streamed),
            "misdelivered": len(misdelivered),
            "duplicates": len(duplicates),
            "transcription_failed": len(failures),
            "transcript_of_the_wrong_clip": len(wrong_text),
            "events_received": sum(len(u.events) for u in users.values()),
            "queue_position_events": sum(u.queued_events for u in users.values()),
        },
        "latency_ms": {
            "upload_request": percentiles(upload_ms),
            "accepted_to_recording_completed": percentiles(accepted_to_completed_ms),
            "accepted_to_transcript_ready": percentiles(accepted_to_ready_ms),
            "upload_start_to_transcript_ready": percentiles(start_to_ready_ms),
            "worker_processing": percentiles(processing_ms),
            "worker_event_to_user_events_xadd": percentiles(persist_hop_ms),
            "user_events_xadd_to_sse_client": percentiles(fan_out_ms),
        },
        "throughput": {
            "uploads_offered_per_s": round(len(all_uploads) / (last_start - first_start), 2),
            "transcripts_per_s": round(len(ready_times) / window_s, 2),
            "first_upload_to_last_transcript_s": round(window_s, 1),
            "all_delivered_after_last_upload_s": round(all_delivered - uploads_done, 1),
            "audio_s_per_wall_s": round(
                sum(clip_s[u.clip] for u in all_uploads if u.recording_id) / window_s, 2
            ),
        },
        "wer": {
            "mean": round(sum(wers) / len(wers), 3) if wers else None,
            "max": round(max(wers), 3) if wers else None,
        },
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "gateway_load.json").write_text(json.dumps(result, indent=2) + "\n")
    gateway_ms = [a + b for a, b in zip(persist_hop_ms, fan_out_ms, strict=True)]
    plot(
        upload_ms, accepted_to_ready_ms, processing_ms, gateway_ms, all_uploads, owner, users,
        first_start,
    )  # fmt: skip
    print(json.dumps(result, indent=2))

    assert failed_uploads == []
    for pid, before in rss_before.items():  # every service's memory stays bounded
        assert rss_after[pid] <= max(2.5 * before, before + RSS_GROWTH_MB), (pid, before)
    assert misdelivered == [], misdelivered[:10]
    assert duplicates == [], duplicates[:10]
    assert lost_transcripts == [], f"{len(lost_transcripts)} transcripts never arrived"
    assert lost_completed == [], f"{len(lost_completed)} stored snapshots lost"
    assert failures == [], failures[:3]
    assert wrong_text == [], wrong_text[:5]


def plot(
    upload_ms: list[float],
    ready_ms: list[float],
    processing_ms: list[float],
    gateway_ms: list[float],
    uploads: list[Upload],
    owner: dict[str, Upload],
    users: dict[str, User],
    first_start: float,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8))
    for values, label in (
        (upload_ms, "upload request (POST /api/recordings)"),
        (ready_ms, "upload accepted → transcribed snapshot on SSE"),
        (processing_ms, "worker processing (tiny.en)"),
        (gateway_ms, "worker's event → SSE client (store, forward, fan out)"),
    ):
        if values:
            ordered = sorted(values)
            ys = [(i + 1) / len(ordered) for i in range(len(ordered))]
            left.step(ordered, ys, where="post", label=label)
    left.set_xscale("log")
    left.set_xlabel("latency (ms, log scale)")
    left.set_ylabel("fraction of clips")
    left.set_title(f"{len(users)} users x {len(uploads) // len(users)} clips: latency CDF")
    left.grid(True, which="both", alpha=0.3)
    left.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, fontsize=8)

    xs, ys = [], []
    for user in users.values():
        for e in user.events:
            rid = e.data.get("recording_id", "")
            if e.type == "transcribed" and rid in owner:
                xs.append(owner[rid].started - first_start)
                ys.append((e.at - owner[rid].accepted) * 1000)
    right.scatter(xs, ys, s=10, alpha=0.7)
    right.set_xlabel("upload started (s since the first upload)")
    right.set_ylabel("accepted → transcribed snapshot (ms)")
    right.set_title("queueing over the run")
    right.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(RESULTS / "gateway_load.png", dpi=110)
    plt.close(fig)
