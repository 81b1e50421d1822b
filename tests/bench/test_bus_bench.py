"""Benchmark of the Redis Streams bus against the raw engine, on a private local redis-server.

What is measured (all in this process and one asyncio loop, on the session's redis-server):

- publish: `EventBus.publish` awaited one by one, against plain redis-py XADD of the same
  pre-encoded bytes (and `encode_entry` alone, to show where the difference goes);
- end to end: N RecordingCompleted through a consumer group whose handler returns a
  TranscriptReady at once, until all N outputs are in the output stream; against a raw
  XREADGROUP COUNT 1 + XACK loop (and the same loop forwarding each entry with XADD, which
  does the same useful work as the bus), and, for bursts, the batched raw engine
  (`raw_batched`: XREADGROUP COUNT 100, then one pipeline of an XADD per entry and one XACK),
  the ceiling a batching bus is measured against. Two ways of feeding it: `one_by_one`
  (published one awaited call at a time while the consumer runs) and `burst` (a backlog
  written in one pipeline, so the figure is the consumer's own rate);
- latency: one event at a time, from just before publishing to when the handler runs
  ("handler" hop) and to when the output entry is read by a StreamTail ("full" hop).

Figures go to tests/bench/results/bus.json with ratios bus / raw (throughput ratio below 1
and latency ratio above 1 mean the bus is slower), the issue-17 targets and whether this run
met them (`targets`), plus a latency CDF in bus_latency.png. Asserted: every output arrived
exactly once and nothing stayed pending, and speed only within ceilings generous enough that
a loaded CI machine cannot flake them (`MIN_BURST_SHARE_OF_RAW_BATCHED`, `MAX_HANDLER_P99_*`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import platform
import statistics
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any, cast

import pytest
import redis as redis_sync
from redis.asyncio import Redis

import whisp_shared.bus as bus_module
from tests.bench.stats import latency_stats
from whisp_cli.redis_server import RedisServer, find_redis_server
from whisp_shared.bus import Consumer, EventBus, Handler
from whisp_shared.codec import DATA_FIELD, decode_entry, encode_entry
from whisp_shared.config import BusSettings
from whisp_shared.events import (
    EVENT_ADAPTER,
    Event,
    FailureFields,
    RecordingCompleted,
    TranscriptionFailed,
    TranscriptReady,
)
from whisp_shared.tail import StreamTail

RESULTS_DIR = Path(__file__).parent / "results"
JSON_PATH = RESULTS_DIR / "bus.json"
PNG_PATH = RESULTS_DIR / "bus_latency.png"

N_PUBLISH = 2000
N_E2E = 5000
N_LATENCY = 300
WARMUP = 30
ROUNDS = 3
"""Each publish figure is the median of this many rounds, bus and raw alternating."""
E2E_ROUNDS = 3
"""Rounds per end-to-end figure (median reported)."""
BUS_WORKERS = (1, 4)
WAIT_TIMEOUT_S = 30.0
POLL_S = 0.001
"""How often the end-to-end bus rounds look at the output stream's length."""
RAW_BATCH = 100
"""COUNT of the batched raw engine's XREADGROUP (the bus's default `read_count`)."""

TARGET_BURST_EVENTS_PER_S = 10_000
TARGET_BURST_SHARE_OF_RAW_BATCHED = 0.5
TARGET_HANDLER_P99_MS = 1.0
"""Issue 17's targets, recorded (met or not) in the JSON."""
MIN_BURST_SHARE_OF_RAW_BATCHED = 0.25
MAX_HANDLER_P99_MS = 5.0
MAX_HANDLER_P99_OVER_RAW = 2.0
"""What is asserted: far enough from the targets that CI noise cannot fail a good bus. The
p99 ceiling is 5 ms, or twice the raw engine's p99 in the same run when the machine is so
busy that the raw loop itself is past 5 ms (300 samples: p99 is the third slowest)."""

GROUP = "bench"
RAW_CONSUMER = "raw-bench"

Entries = list[tuple[bytes, dict[bytes, bytes]]]
"""Stream entries as redis-py returns them (ids and fields as bytes)."""
Response = list[tuple[bytes, Entries]]


def bench_settings(url: str) -> BusSettings:
    """The production defaults, spelled out so config.yaml or the environment cannot move them."""
    return BusSettings(
        redis_url=url,
        claim_idle_ms=30_000,
        max_deliveries=3,
        read_block_ms=1_000,
        read_count=100,
        stream_maxlen=100_000,
        done_ttl_s=3600,
        graceful_timeout_s=5.0,
    )


# --- events and handlers -------------------------------------------------------------------


def recordings(tag: str, n: int) -> list[RecordingCompleted]:
    run = uuid.uuid4().hex[:8]
    return [
        RecordingCompleted(
            recording_id=f"{tag}-{run}-{i}",
            user_id="bench",
            audio_uri=f"file:///bench/{tag}/{i}.wav",
        )
        for i in range(n)
    ]


async def encoded(events: list[RecordingCompleted]) -> list[bytes]:
    return [(encode_entry(event))[DATA_FIELD] for event in events]


def transcript_for(event: Event) -> TranscriptReady:
    return TranscriptReady(
        **event.follow_up(),
        text="",
        is_empty=True,
        engine="bench",
        model="none",
        audio_duration_s=0.0,
        processing_s=0.0,
        real_time_factor=0.0,
    )


def failure_for(event: Event, failure: FailureFields) -> TranscriptionFailed:
    return TranscriptionFailed(**event.follow_up(), **failure.model_dump())


async def instant_transcript(event: Event) -> TranscriptReady:
    return transcript_for(event)


# --- small measuring tools -----------------------------------------------------------------


def fresh_streams(tag: str) -> tuple[str, str]:
    run = uuid.uuid4().hex[:8]
    return f"bench:{tag}:{run}:in", f"bench:{tag}:{run}:out"


@asynccontextmanager
async def running_bus(
    url: str,
    stream: str | None = None,
    output_stream: str = "",
    handler: Handler = instant_transcript,
    max_workers: int = 1,
    stop_times: list[float] | None = None,
) -> AsyncIterator[EventBus]:
    bus = EventBus(bench_settings(url), consumer_name=f"bench-{uuid.uuid4().hex[:6]}")
    if stream is not None:
        bus.consume(
            Consumer(
                stream=stream,
                group=GROUP,
                output_stream=output_stream,
                handler=handler,
                on_failure=failure_for,
                max_workers=max_workers,
            )
        )
    await bus.start()
    try:
        yield bus
    finally:
        started = time.perf_counter()
        await bus.stop()
        if stop_times is not None:
            stop_times.append(time.perf_counter() - started)


async def wait_for_entries(client: Redis, stream: str, n: int) -> float:
    """When `stream` first held `n` entries (XLEN polled every `POLL_S`). Reading every output
    back instead would put the reader's parsing (~35 µs an entry in redis-py without hiredis,
    as much as the consumer's own read) on the bus's side of the comparison only: the raw
    loops are timed by their own last ack. Exactly-once is checked afterwards, in full."""
    async with asyncio.timeout(WAIT_TIMEOUT_S):
        while await client.xlen(stream) < n:
            await asyncio.sleep(POLL_S)
    return time.perf_counter()


async def raw_consume(
    client: Redis,
    stream: str,
    n: int,
    forward_to: str | None = None,
    on_receive: Callable[[bytes], None] | None = None,
) -> float:
    """The raw engine's consumer: XREADGROUP COUNT 1, optional XADD of the entry, XACK."""
    done = 0
    async with asyncio.timeout(WAIT_TIMEOUT_S):
        while done < n:
            response = await client.xreadgroup(
                GROUP, RAW_CONSUMER, {stream: ">"}, count=1, block=1_000
            )
            for _name, entries in cast(Response, response or []):
                for entry_id, fields in entries:
                    if on_receive is not None:
                        on_receive(fields[DATA_FIELD])
                    if forward_to is not None:
                        await client.xadd(forward_to, {DATA_FIELD: fields[DATA_FIELD]})
                    await client.xack(stream, GROUP, entry_id)
                    done += 1
    return time.perf_counter()


async def raw_batched_consume(client: Redis, stream: str, n: int, forward_to: str) -> float:
    """The batched raw engine: XREADGROUP COUNT 100, then one pipeline forwarding each entry
    with XADD and acking the batch with one XACK."""
    done = 0
    async with asyncio.timeout(WAIT_TIMEOUT_S):
        while done < n:
            response = await client.xreadgroup(
                GROUP, RAW_CONSUMER, {stream: ">"}, count=RAW_BATCH, block=1_000
            )
            for _name, entries in cast(Response, response or []):
                pipe = client.pipeline(transaction=False)
                for _entry_id, fields in entries:
                    pipe.xadd(forward_to, {DATA_FIELD: fields[DATA_FIELD]})
                pipe.xack(stream, GROUP, *(entry_id for entry_id, _fields in entries))
                await pipe.execute()
                done += len(entries)
    return time.perf_counter()


async def command_calls(client: Redis) -> Counter[str]:
    stats = await client.info("commandstats")
    return Counter(
        {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}
    )


def per_entry(before: Counter[str], after: Counter[str], n: int) -> dict[str, float]:
    delta = after - before
    return {name: round(calls / n, 3) for name, calls in sorted(delta.items())}


def rate(n: int, seconds: float) -> float:
    return round(n / seconds, 1)


def median_rate(rounds: list[dict[str, float]]) -> float:
    return round(statistics.median(r["events_per_s"] for r in rounds), 1)


@dataclass
class Probe:
    """One event in flight at a time: the handler and the tail each stamp their arrival."""

    key: str | bytes | None = None
    stamps: dict[str, asyncio.Future[float]] = field(default_factory=dict)
    strays: int = 0

    def arm(self, key: str | bytes) -> None:
        loop = asyncio.get_running_loop()
        self.key = key
        self.stamps = {"handled": loop.create_future(), "tailed": loop.create_future()}

    def hit(self, stage: str, key: str | bytes) -> None:
        now = time.perf_counter()
        future = self.stamps.get(stage)
        if key != self.key or future is None or future.done():
            self.strays += 1
            return
        future.set_result(now)

    async def wait(self) -> tuple[float, float]:
        async with asyncio.timeout(WAIT_TIMEOUT_S):
            return await self.stamps["handled"], await self.stamps["tailed"]


async def stop_loop(stop: asyncio.Event, task: asyncio.Task[None]) -> None:
    """End a reader by flag, not by cancel: on Python 3.11 a cancel that lands while redis-py
    sends a command (inside `asyncio.wait_for(..., socket_timeout)`) can be lost, and the
    reader would then block forever."""
    stop.set()
    async with asyncio.timeout(WAIT_TIMEOUT_S):
        await task


# --- checks --------------------------------------------------------------------------------


async def assert_bus_exactly_once(
    client: Redis, stream: str, output_stream: str, events: list[RecordingCompleted]
) -> None:
    entries = cast(Entries, await client.xrange(output_stream))
    outputs = [decode_entry(fields) for _id, fields in entries]
    counts = Counter(event.recording_id for event in outputs)
    assert all(isinstance(event, TranscriptReady) for event in outputs)
    assert set(counts) == {event.recording_id for event in events}
    assert max(counts.values()) == 1, counts.most_common(3)
    assert (await client.xpending(stream, GROUP))["pending"] == 0
    assert await client.xlen(f"{stream}:dead") == 0


async def assert_raw_all_acked(client: Redis, stream: str, n: int) -> None:
    assert await client.xlen(stream) == n
    assert (await client.xpending(stream, GROUP))["pending"] == 0


# --- report: written once the module's tests ran -------------------------------------------


def machine_info(server: RedisServer) -> dict[str, Any]:
    client = redis_sync.Redis.from_url(server.url)
    try:
        info: dict[str, Any] = client.info("server")
    finally:
        client.close()
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return {
        "cpu_count": os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "git_head": head or None,
        "bus_py_sha256": bus_sources_sha256(),
        "redis_server_binary": str(find_redis_server()),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "redis_version": info["redis_version"],
        "redis_py": version("redis"),
    }


def bus_sources_sha256() -> str:
    """One hash over the bus's modules and its Lua, so a figure names the code it measured."""
    folder = Path(bus_module.__file__).parent
    digest = hashlib.sha256()
    for path in sorted([*folder.glob("bus*.py"), *folder.glob("*.lua")]):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b else float("nan")


def add_ratios(results: dict[str, Any]) -> dict[str, Any]:
    """bus / raw for every figure measured; throughput < 1 and latency > 1 mean slower."""
    ratios: dict[str, Any] = {}
    if pub := results.get("publish"):
        ratios["publish_throughput_bus_over_raw_xadd"] = ratio(
            pub["bus"]["events_per_s"], pub["raw_xadd"]["events_per_s"]
        )
    if e2e := results.get("end_to_end"):
        for mode, figures in e2e.items():
            for name, fig in figures.items():
                if not name.startswith("bus"):
                    continue
                ratios[f"e2e_{mode}_throughput_{name}_over_raw_ack"] = ratio(
                    fig["events_per_s"], figures["raw_ack"]["events_per_s"]
                )
                ratios[f"e2e_{mode}_throughput_{name}_over_raw_forward"] = ratio(
                    fig["events_per_s"], figures["raw_forward"]["events_per_s"]
                )
                if "raw_batched" in figures:
                    ratios[f"e2e_{mode}_throughput_{name}_over_raw_batched"] = ratio(
                        fig["events_per_s"], figures["raw_batched"]["events_per_s"]
                    )
    if lat := results.get("latency"):
        for hop in ("handler", "full"):
            for stat in ("median_ms", "p99_ms"):
                ratios[f"latency_{hop}_{stat.removesuffix('_ms')}_bus_over_raw"] = ratio(
                    lat["bus"][hop][stat], lat["raw"][hop][stat]
                )
    return ratios


def targets(results: dict[str, Any]) -> dict[str, Any]:
    """Issue 17's targets against this run's figures (the best bus variant for throughput)."""
    out: dict[str, Any] = {}
    if burst := results.get("end_to_end", {}).get("burst"):
        best = max(fig["events_per_s"] for name, fig in burst.items() if name.startswith("bus"))
        share = ratio(best, burst["raw_batched"]["events_per_s"])
        out["burst_events_per_s"] = {
            "target": TARGET_BURST_EVENTS_PER_S,
            "value": best,
            "met": best >= TARGET_BURST_EVENTS_PER_S,
        }
        out["burst_share_of_raw_batched"] = {
            "target": TARGET_BURST_SHARE_OF_RAW_BATCHED,
            "value": share,
            "met": share >= TARGET_BURST_SHARE_OF_RAW_BATCHED,
        }
    if lat := results.get("latency"):
        p99 = lat["bus"]["handler"]["p99_ms"]
        out["handler_p99_ms"] = {
            "target": TARGET_HANDLER_P99_MS,
            "value": p99,
            "met": p99 <= TARGET_HANDLER_P99_MS,
        }
    return out


def plot_latency(samples: dict[str, dict[str, list[float]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    all_ms = [v * 1000 for hops in samples.values() for vals in hops.values() for v in vals]
    low, high = min(all_ms), max(all_ms)
    bins = [low * (high / low) ** (i / 80) for i in range(81)]  # even widths on a log axis
    fig, (cdf, hist) = plt.subplots(1, 2, figsize=(13, 5))
    styles = {"bus": "-", "raw": "--"}
    for system, hops in samples.items():
        for hop, values in hops.items():
            ms = sorted(v * 1000 for v in values)
            ys = [(i + 1) / len(ms) for i in range(len(ms))]
            label = f"{system} {hop} hop"
            cdf.step(ms, ys, where="post", linestyle=styles[system], label=label)
            hist.hist(ms, bins=bins, histtype="step", linestyle=styles[system], label=label)
    for ax in (cdf, hist):
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 3.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("latency from publish (ms, log scale)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    cdf.set_ylabel("fraction of events")
    cdf.set_title("publish → handler runs / → output read by a tail (CDF)")
    hist.set_ylabel("events")
    hist.set_title("latency histogram")
    fig.suptitle("WhisPTT EventBus vs raw redis-py streams, one event at a time")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def summary_lines(data: dict[str, Any]) -> list[str]:
    res, lines = data["results"], ["", "=== bus benchmark ==="]
    m = data["machine"]
    lines.append(f"{m['cpu_count']} CPUs, redis {m['redis_version']}, python {m['python']}")
    if pub := res.get("publish"):
        lines.append(
            "publish  events/s: bus {bus} | raw XADD {raw} | encode_entry only {enc}".format(
                bus=pub["bus"]["events_per_s"],
                raw=pub["raw_xadd"]["events_per_s"],
                enc=pub["encode_only"]["events_per_s"],
            )
        )
    for mode, figures in res.get("end_to_end", {}).items():
        parts = [f"{name} {fig['events_per_s']}" for name, fig in figures.items()]
        lines.append(f"e2e {mode:<10} events/s: " + " | ".join(parts))
    if lat := res.get("latency"):
        for hop in ("handler", "full"):
            b, r = lat["bus"][hop], lat["raw"][hop]
            lines.append(
                f"latency {hop:<7} median/p99 ms: bus {b['median_ms']:.3f}/{b['p99_ms']:.3f}"
                f" | raw {r['median_ms']:.3f}/{r['p99_ms']:.3f}"
            )
    for name, value in data.get("ratios", {}).items():
        lines.append(f"  {name}: {value}")
    for name, target in data.get("targets", {}).items():
        verdict = "met" if target["met"] else "NOT met"
        lines.append(f"  target {name}: {target['value']} vs {target['target']} ({verdict})")
    lines.append(f"written: {JSON_PATH} and {PNG_PATH.name}")
    return lines


@pytest.fixture(scope="module")
def report(redis_server: RedisServer) -> Iterator[dict[str, Any]]:
    data: dict[str, Any] = {
        "machine": machine_info(redis_server),
        "parameters": {
            "n_publish": N_PUBLISH,
            "n_end_to_end": N_E2E,
            "n_latency": N_LATENCY,
            "latency_warmup": WARMUP,
            "publish_rounds": ROUNDS,
            "end_to_end_rounds": E2E_ROUNDS,
            "throughput_statistic": "median of rounds",
            "bus_workers": list(BUS_WORKERS),
            "bus_settings": bench_settings(redis_server.url).model_dump(
                exclude={"redis_url", "mode"}
            ),
            "raw_consumer": "XREADGROUP COUNT 1 BLOCK 1000 + XACK per entry (raw_ack); "
            "raw_forward also XADDs the entry to an output stream before the XACK; "
            f"raw_batched (bursts): XREADGROUP COUNT {RAW_BATCH} + one pipeline of an XADD "
            "per entry and one XACK",
            "payload": "the `data` field of a RecordingCompleted entry (same bytes for raw)",
            "process": "publisher, consumer and reader share one process and asyncio loop",
            "end_to_end_finish": "bus: XLEN of the output polled every 1 ms; raw: the "
            "consumer's last ack",
        },
        "results": {},
        "samples_ms": {},
    }
    started = time.perf_counter()
    yield data
    data["elapsed_s"] = round(time.perf_counter() - started, 2)
    data["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    data["ratios"] = add_ratios(data["results"])
    data["targets"] = targets(data["results"])
    samples = data.pop("samples_ms")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    if samples:
        data["latency_samples_ms"] = {
            system: {hop: [round(v * 1000, 4) for v in vals] for hop, vals in hops.items()}
            for system, hops in samples.items()
        }
        plot_latency(samples, PNG_PATH)
    JSON_PATH.write_text(json.dumps(data, indent=2) + "\n")
    print("\n".join(summary_lines(data)))


# --- the benchmarks ------------------------------------------------------------------------


@pytest.mark.bench
async def test_publish_throughput(redis_server: RedisServer, report: dict[str, Any]) -> None:
    """`bus.publish` awaited one by one vs raw XADD of the same bytes; encode cost alone."""
    client = Redis.from_url(redis_server.url)
    rounds: dict[str, list[dict[str, float]]] = {"bus": [], "raw_xadd": [], "encode_only": []}
    async with running_bus(redis_server.url) as bus:
        warm = recordings("pub-warm", 200)
        for event in warm:
            await bus.publish("bench:pub:warm", event)
            await client.xadd("bench:pub:warm-raw", {DATA_FIELD: b"x"})
        for _ in range(ROUNDS):
            events = recordings("pub", N_PUBLISH)
            payloads = await encoded(events)
            stream = fresh_streams("pub")[0]

            started = time.perf_counter()
            for event in events:
                encode_entry(event)
            elapsed = time.perf_counter() - started
            rounds["encode_only"].append(
                {"seconds": elapsed, "events_per_s": rate(N_PUBLISH, elapsed)}
            )

            started = time.perf_counter()
            for event in events:
                await bus.publish(stream, event)
            elapsed = time.perf_counter() - started
            rounds["bus"].append({"seconds": elapsed, "events_per_s": rate(N_PUBLISH, elapsed)})

            started = time.perf_counter()
            for payload in payloads:
                await client.xadd(stream + ":raw", {DATA_FIELD: payload})
            elapsed = time.perf_counter() - started
            rounds["raw_xadd"].append(
                {"seconds": elapsed, "events_per_s": rate(N_PUBLISH, elapsed)}
            )

            assert await client.xlen(stream) == N_PUBLISH
            assert await client.xlen(stream + ":raw") == N_PUBLISH
    await client.aclose()

    report["results"]["publish"] = {
        name: {
            "events_per_s": median_rate(rs),
            "us_per_event": round(1e6 / median_rate(rs), 2),
            "rounds_events_per_s": [r["events_per_s"] for r in rs],
        }
        for name, rs in rounds.items()
    }
    report["results"]["publish"]["payload_bytes"] = len(payloads[0])


async def bus_e2e_round(
    url: str, client: Redis, mode: str, workers: int, calls: list[dict[str, float]]
) -> float:
    stream, output = fresh_streams(f"e2e-{mode}-bus{workers}")
    events = recordings(f"e2e-{mode}", N_E2E)
    payloads = await encoded(events)
    async with running_bus(url, stream, output, max_workers=workers) as bus:
        reader = asyncio.create_task(wait_for_entries(client, output, N_E2E))
        before = await command_calls(client)
        started = time.perf_counter()
        if mode == "burst":
            pipe = client.pipeline(transaction=False)
            for payload in payloads:
                pipe.xadd(stream, {DATA_FIELD: payload})
            await pipe.execute()
        else:
            for event in events:
                await bus.publish(stream, event)
        finished = await reader
        calls.append(per_entry(before, await command_calls(client), N_E2E))
    await assert_bus_exactly_once(client, stream, output, events)
    return finished - started


async def raw_e2e_round(
    url: str, client: Redis, mode: str, forward: bool, batched: bool = False
) -> float:
    stream, output = fresh_streams(f"e2e-{mode}-raw")
    payloads = await encoded(recordings(f"e2e-{mode}-raw", N_E2E))
    await client.xgroup_create(stream, GROUP, id="0", mkstream=True)
    consumer_client = Redis.from_url(url)
    consumer = asyncio.create_task(
        raw_batched_consume(consumer_client, stream, N_E2E, output)
        if batched
        else raw_consume(consumer_client, stream, N_E2E, forward_to=output if forward else None)
    )
    await asyncio.sleep(0.05)  # let it block in XREADGROUP, as the bus's reader does
    started = time.perf_counter()
    if mode == "burst":
        pipe = client.pipeline(transaction=False)
        for payload in payloads:
            pipe.xadd(stream, {DATA_FIELD: payload})
        await pipe.execute()
    else:
        for payload in payloads:
            await client.xadd(stream, {DATA_FIELD: payload})
    finished = await consumer
    await consumer_client.aclose()
    await assert_raw_all_acked(client, stream, N_E2E)
    if forward:
        assert await client.xlen(output) == N_E2E
    return finished - started


@pytest.mark.bench
@pytest.mark.parametrize("mode", ["one_by_one", "burst"])
async def test_end_to_end_throughput(
    redis_server: RedisServer, report: dict[str, Any], mode: str
) -> None:
    """N events through a consumer group until every output is in the output stream."""
    client = Redis.from_url(redis_server.url)
    seconds: dict[str, list[float]] = {}
    calls: dict[str, list[dict[str, float]]] = {}
    for _ in range(E2E_ROUNDS):
        for workers in BUS_WORKERS:
            name = f"bus_workers_{workers}"
            elapsed = await bus_e2e_round(
                redis_server.url, client, mode, workers, calls.setdefault(name, [])
            )
            seconds.setdefault(name, []).append(elapsed)
        seconds.setdefault("raw_ack", []).append(
            await raw_e2e_round(redis_server.url, client, mode, False)
        )
        seconds.setdefault("raw_forward", []).append(
            await raw_e2e_round(redis_server.url, client, mode, True)
        )
        if mode == "burst":
            seconds.setdefault("raw_batched", []).append(
                await raw_e2e_round(redis_server.url, client, mode, True, batched=True)
            )
    await client.aclose()

    figures: dict[str, Any] = {}
    for name, values in seconds.items():
        rates = [rate(N_E2E, s) for s in values]
        figures[name] = {
            "events_per_s": round(statistics.median(rates), 1),
            "rounds_events_per_s": rates,
        }
        if name in calls:
            # last round's redis commands per entry (includes the benchmark's own XREADs)
            figures[name]["redis_calls_per_entry"] = calls[name][-1]
    report["results"].setdefault("end_to_end", {})[mode] = figures
    if mode == "burst":
        best = max(figures[f"bus_workers_{w}"]["events_per_s"] for w in BUS_WORKERS)
        floor = MIN_BURST_SHARE_OF_RAW_BATCHED * figures["raw_batched"]["events_per_s"]
        assert best >= floor, f"bus burst {best}/s under {floor:.0f}/s: {figures}"


@pytest.mark.bench
async def test_latency(redis_server: RedisServer, report: dict[str, Any]) -> None:
    """One event at a time: publish → handler runs, publish → output readable by a tail."""
    url = redis_server.url
    client = Redis.from_url(url)
    tail_client = Redis.from_url(url)
    samples: dict[str, dict[str, list[float]]] = {}
    publish_call: dict[str, list[float]] = {"bus": [], "raw": []}

    # the bus
    stream, output = fresh_streams("lat-bus")
    probe = Probe()

    async def handler(event: Event) -> TranscriptReady:
        probe.hit("handled", event.recording_id)
        return transcript_for(event)

    stop = asyncio.Event()

    async def follow_bus_output() -> None:
        tail, positions = (
            StreamTail(tail_client, [output], EVENT_ADAPTER, block_ms=100),
            {output: "0-0"},
        )
        while not stop.is_set():
            for item in await tail.read(positions):
                probe.hit("tailed", item.event.recording_id)

    events = recordings("lat", WARMUP + N_LATENCY)
    handled, tailed = [], []
    async with running_bus(url, stream, output, handler=handler) as bus:
        tail = asyncio.create_task(follow_bus_output())
        await asyncio.sleep(0.05)
        for i, event in enumerate(events):
            probe.arm(event.recording_id)
            started = time.perf_counter()
            await bus.publish(stream, event)
            published = time.perf_counter()
            t_handled, t_tailed = await probe.wait()
            if i >= WARMUP:
                publish_call["bus"].append(published - started)
                handled.append(t_handled - started)
                tailed.append(t_tailed - started)
        await stop_loop(stop, tail)
    await assert_bus_exactly_once(client, stream, output, events)
    samples["bus"] = {"handler": handled, "full": tailed}
    bus_strays = probe.strays

    # the raw engine: XADD → XREADGROUP COUNT 1 (handler) → XADD output + XACK → XREAD (full)
    stream, output = fresh_streams("lat-raw")
    await client.xgroup_create(stream, GROUP, id="0", mkstream=True)
    payloads = await encoded(recordings("lat-raw", WARMUP + N_LATENCY))
    probe = Probe()
    consumer_client = Redis.from_url(url)

    stop = asyncio.Event()

    async def follow_raw_output() -> None:
        last = b"0-0"
        while not stop.is_set():
            response = await tail_client.xread(cast(Any, {output: last}), count=100, block=100)
            for _name, entries in cast(Response, response or []):
                for entry_id, fields in entries:
                    last = entry_id
                    probe.hit("tailed", fields[DATA_FIELD])

    consumer = asyncio.create_task(
        raw_consume(
            consumer_client,
            stream,
            len(payloads),
            forward_to=output,
            on_receive=lambda payload: probe.hit("handled", payload),
        )
    )
    tail = asyncio.create_task(follow_raw_output())
    await asyncio.sleep(0.05)
    handled, tailed = [], []
    for i, payload in enumerate(payloads):
        probe.arm(payload)
        started = time.perf_counter()
        await client.xadd(stream, {DATA_FIELD: payload})
        published = time.perf_counter()
        t_handled, t_tailed = await probe.wait()
        if i >= WARMUP:
            publish_call["raw"].append(published - started)
            handled.append(t_handled - started)
            tailed.append(t_tailed - started)
    await consumer
    await stop_loop(stop, tail)
    await assert_raw_all_acked(client, stream, len(payloads))
    samples["raw"] = {"handler": handled, "full": tailed}
    raw_strays = probe.strays
    for c in (client, tail_client, consumer_client):
        await c.aclose()

    assert bus_strays == raw_strays == 0
    report["samples_ms"] = samples
    report["results"]["latency"] = {
        system: {
            "publish_call": latency_stats(publish_call[system]),
            **{hop: latency_stats(values) for hop, values in hops.items()},
        }
        for system, hops in samples.items()
    }
    lat = report["results"]["latency"]
    p99_ms, raw_p99_ms = lat["bus"]["handler"]["p99_ms"], lat["raw"]["handler"]["p99_ms"]
    ceiling = max(MAX_HANDLER_P99_MS, MAX_HANDLER_P99_OVER_RAW * raw_p99_ms)
    assert p99_ms <= ceiling, f"publish -> handler p99 {p99_ms} ms (raw {raw_p99_ms} ms)"
