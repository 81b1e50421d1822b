"""What durable accepted work costs: XADD with the AOF fsynced on every write (`whisp up`'s
default, `appendfsync always`) vs once a second (`everysec`) vs no AOF, on this machine's disk.

Three private redis-servers (`RedisServer`, the one `whisp up` starts) run side by side, their
data in a folder next to the stack's default data dir (same filesystem; /tmp may be tmpfs,
where fsync costs nothing). Each round measures every mode in turn (the order rotates):

- sequential: one client, one XADD at a time (the accept path: an upload's XADD is awaited
  before the answer), latency per call and calls/s;
- concurrent: `CLIENTS` asyncio clients on their own connections, each awaiting its XADDs:
  with `always` Redis fsyncs once per event-loop turn for every write of that turn (group
  commit), so many users pay far less than one fsync each;
- raw fsync: write + os.fsync of the same bytes to a file in the same folder (the floor
  `always` cannot go below).

Then each AOF server is SIGKILLed and started again on its port: how many acknowledged
entries it still has (all of them, for `always`; a crash of redis-server alone usually loses
nothing with `everysec` either, since the kernel has every write — it is a machine crash or
power cut that loses up to the last second).

Figures go to tests/bench/results/redis_durability.json and redis_durability.png. Only
generous ceilings are asserted (and that `always` kept every acknowledged entry).
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import redis as redis_sync
from redis.asyncio import Redis

from tests.bench.stats import latency_stats
from whisp_cli.redis_server import AppendFsync, RedisServer, find_redis_server
from whisp_shared.codec import DATA_FIELD, encode_entry
from whisp_shared.events import RecordingCompleted

pytestmark = pytest.mark.bench

RESULTS_DIR = Path(__file__).parent / "results"
JSON_PATH = RESULTS_DIR / "redis_durability.json"
PNG_PATH = RESULTS_DIR / "redis_durability.png"
REPO = Path(__file__).resolve().parents[2]

MODES: dict[str, tuple[bool, AppendFsync]] = {
    "no_aof": (False, "always"),
    "everysec": (True, "everysec"),
    "always": (True, "always"),
}
ROUNDS = 3
N_SEQUENTIAL = 600
"""XADDs per round and mode, one at a time."""
CLIENTS = 16
N_PER_CLIENT = 60
N_FSYNC = 200
WARMUP = 50
STREAM = "bench:durability"

CEILING_MEDIAN_MS = {"no_aof": 20.0, "everysec": 20.0, "always": 100.0}
CEILING_P95_MS = {"no_aof": 100.0, "everysec": 100.0, "always": 500.0}


def payload() -> dict[bytes, bytes]:
    """A real RecordingCompleted as the bus writes it (codec fields)."""
    event = RecordingCompleted(
        recording_id="bench-durability",
        user_id="bench",
        audio_uri="file:///data/audio/bench-durability.wav",
    )
    return encode_entry(event)


def filesystem_of(path: Path) -> str:
    """The fstype of the mount that holds `path` (from /proc/mounts)."""
    best, fstype = "", "?"
    real = str(path.resolve())
    for line in Path("/proc/mounts").read_text().splitlines():
        parts = line.split()
        mount = parts[1]
        if (real == mount or real.startswith(mount.rstrip("/") + "/")) and len(mount) > len(best):
            best, fstype = mount, parts[2]
    return fstype


def bench_root() -> Path:
    """Next to `whisp up`'s default data dir when it can be written, else the temp dir."""
    data = REPO / "data"
    try:
        data.mkdir(exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=".bench-redis-durability-", dir=data))
    except OSError:
        return Path(tempfile.mkdtemp(prefix="bench-redis-durability-"))


def p95(samples_s: list[float]) -> float:
    return round(statistics.quantiles([s * 1000 for s in samples_s], n=100)[94], 4)


def sequential(client: redis_sync.Redis, fields: dict[bytes, bytes], n: int) -> list[float]:
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        client.xadd(STREAM, cast(Any, fields))
        samples.append(time.perf_counter() - started)
    return samples


async def concurrent(url: str, fields: dict[bytes, bytes]) -> tuple[float, list[float]]:
    """(seconds for all, per-call latencies) of CLIENTS clients x N_PER_CLIENT XADDs."""
    clients = [Redis.from_url(url) for _ in range(CLIENTS)]
    samples: list[float] = []

    async def one(client: Redis) -> None:
        for _ in range(N_PER_CLIENT):
            started = time.perf_counter()
            await client.xadd(STREAM, cast(Any, fields))
            samples.append(time.perf_counter() - started)

    try:
        await asyncio.gather(*(c.ping() for c in clients))  # connect outside the clock
        started = time.perf_counter()
        await asyncio.gather(*(one(c) for c in clients))
        return time.perf_counter() - started, samples
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))


def raw_fsync(folder: Path, data: bytes, n: int) -> list[float]:
    samples = []
    path = folder / "fsync-probe.bin"
    with path.open("ab") as fh:
        for _ in range(n):
            started = time.perf_counter()
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
            samples.append(time.perf_counter() - started)
    path.unlink()
    return samples


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[Path, dict[str, RedisServer]]]:
    root = bench_root()
    started: dict[str, RedisServer] = {}
    try:
        for mode, (persist, fsync) in MODES.items():
            started[mode] = RedisServer(
                data_dir=root / mode, persist=persist, appendfsync=fsync
            ).start()
        yield root, started
    finally:
        for server in started.values():
            server.close()
        for path in sorted(root.rglob("*"), reverse=True):
            path.rmdir() if path.is_dir() else path.unlink()
        root.rmdir()


def plot(data: dict[str, Any], samples: dict[str, list[float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (cdf, bars) = plt.subplots(1, 2, figsize=(13, 5))
    for mode, values in samples.items():
        ms = sorted(v * 1000 for v in values)
        cdf.step(ms, [(i + 1) / len(ms) for i in range(len(ms))], where="post", label=mode)
    cdf.set_xscale("log")
    cdf.set_xlabel("XADD latency, one client (ms, log scale)")
    cdf.set_ylabel("fraction of calls")
    cdf.set_title("sequential XADD latency (CDF)")
    cdf.grid(True, which="both", alpha=0.3)
    cdf.legend()
    modes = list(samples)
    res = data["results"]
    xs = range(len(modes))
    seq = [res[m]["sequential"]["calls_per_s"] for m in modes]
    conc = [res[m]["concurrent"]["calls_per_s"] for m in modes]
    bars.bar([x - 0.2 for x in xs], seq, width=0.4, label="1 client")
    bars.bar([x + 0.2 for x in xs], conc, width=0.4, label=f"{CLIENTS} clients")
    bars.set_xticks(list(xs), modes)
    bars.set_ylabel("XADD per second")
    bars.set_title("throughput")
    bars.legend()
    bars.grid(True, axis="y", alpha=0.3)
    fig.suptitle(
        f"Redis AOF durability cost on this machine ({data['machine']['filesystem']}, "
        f"raw fsync median {data['results']['raw_fsync']['median_ms']:.2f} ms)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def test_xadd_cost_of_appendfsync_always_vs_everysec_vs_no_aof(
    servers: tuple[Path, dict[str, RedisServer]],
) -> None:
    root, running = servers
    fields = payload()
    clients = {mode: redis_sync.Redis.from_url(s.url) for mode, s in running.items()}
    for mode, client in clients.items():
        config = cast(dict[str, str], client.config_get("append*"))
        persist, fsync = MODES[mode]
        assert config["appendonly"] == ("yes" if persist else "no"), (mode, config)
        if persist:
            assert config["appendfsync"] == fsync, (mode, config)
        sequential(client, fields, WARMUP)

    seq: dict[str, list[float]] = {m: [] for m in MODES}
    seq_rates: dict[str, list[float]] = {m: [] for m in MODES}
    conc: dict[str, list[float]] = {m: [] for m in MODES}
    conc_rates: dict[str, list[float]] = {m: [] for m in MODES}
    fsyncs: list[float] = []
    started = time.perf_counter()
    load_start = os.getloadavg()
    order = list(MODES)
    for round_no in range(ROUNDS):
        for mode in order[round_no % len(order) :] + order[: round_no % len(order)]:
            samples = sequential(clients[mode], fields, N_SEQUENTIAL)
            seq[mode] += samples
            seq_rates[mode].append(N_SEQUENTIAL / sum(samples))
            seconds, samples = asyncio.run(concurrent(running[mode].url, fields))
            conc[mode] += samples
            conc_rates[mode].append(CLIENTS * N_PER_CLIENT / seconds)
        fsyncs += raw_fsync(root, fields[DATA_FIELD], N_FSYNC // ROUNDS)

    written = WARMUP + ROUNDS * (N_SEQUENTIAL + CLIENTS * N_PER_CLIENT)
    kept: dict[str, int] = {}
    for mode, client in clients.items():
        assert client.xlen(STREAM) == written, mode
        client.close()
        if MODES[mode][0]:  # SIGKILL, then the same port and data again
            server = running[mode]
            server.stop(kill=True)
            server.start()
            with redis_sync.Redis.from_url(server.url) as again:
                kept[mode] = int(again.xlen(STREAM))

    results: dict[str, Any] = {}
    for mode in MODES:
        results[mode] = {
            "sequential": {
                **latency_stats(seq[mode]),
                "p95_ms": p95(seq[mode]),
                "calls_per_s": round(statistics.median(seq_rates[mode]), 1),
                "rounds_calls_per_s": [round(r, 1) for r in seq_rates[mode]],
            },
            "concurrent": {
                **latency_stats(conc[mode]),
                "p95_ms": p95(conc[mode]),
                "calls_per_s": round(statistics.median(conc_rates[mode]), 1),
                "rounds_calls_per_s": [round(r, 1) for r in conc_rates[mode]],
            },
        }
        if mode in kept:
            results[mode]["entries_after_sigkill_restart"] = {
                "written": written,
                "kept": kept[mode],
            }
    results["raw_fsync"] = {**latency_stats(fsyncs), "p95_ms": p95(fsyncs)}

    def ratio(a: str, b: str, kind: str, key: str) -> float:
        return float(round(results[a][kind][key] / results[b][kind][key], 2))

    ratios = {
        f"{kind}_{key}_{a}_over_{b}": ratio(a, b, kind, key)
        for kind in ("sequential", "concurrent")
        for key in ("median_ms", "p95_ms", "calls_per_s")
        for a, b in (("always", "no_aof"), ("always", "everysec"), ("everysec", "no_aof"))
    }
    with redis_sync.Redis.from_url(running["always"].url) as probe:
        redis_version = cast(dict[str, Any], probe.info("server"))["redis_version"]
    data: dict[str, Any] = {
        "machine": {
            "cpu_count": os.cpu_count(),
            "load_average_at_start": [round(x, 2) for x in load_start],
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
            "platform": platform.platform(),
            "python": platform.python_version(),
            "redis_server_binary": str(find_redis_server()),
            "redis_version": redis_version,
            "data_dir": str(root),
            "filesystem": filesystem_of(root),
        },
        "parameters": {
            "rounds": ROUNDS,
            "sequential_per_round": N_SEQUENTIAL,
            "concurrent_clients": CLIENTS,
            "concurrent_per_client": N_PER_CLIENT,
            "warmup": WARMUP,
            "payload_bytes": sum(len(k) + len(v) for k, v in fields.items()),
            "payload": "codec fields of a RecordingCompleted (what the audio service XADDs)",
            "calls_per_s": "median of rounds; latency figures pool every round",
            "modes": {
                m: ("appendonly no" if not p else f"appendonly yes, appendfsync {f}")
                for m, (p, f) in MODES.items()
            },
        },
        "results": results,
        "ratios": ratios,
        "elapsed_s": round(time.perf_counter() - started, 2),
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    plot(data, seq, PNG_PATH)
    JSON_PATH.write_text(json.dumps(data, indent=2) + "\n")
    print(f"\n=== redis durability ({data['machine']['filesystem']}, {redis_version}) ===")
    for mode in MODES:
        s, c = results[mode]["sequential"], results[mode]["concurrent"]
        print(
            f"{mode:<9} 1 client: median {s['median_ms']:.3f} ms p95 {s['p95_ms']:.3f} ms "
            f"{s['calls_per_s']:.0f}/s | {CLIENTS} clients: median {c['median_ms']:.3f} ms "
            f"p95 {c['p95_ms']:.3f} ms {c['calls_per_s']:.0f}/s"
        )
    print(f"raw fsync median {results['raw_fsync']['median_ms']:.3f} ms; kept after SIGKILL {kept}")
    print(json.dumps(ratios, indent=1))

    assert kept["always"] == written  # every acknowledged entry survived
    for mode in MODES:
        assert results[mode]["sequential"]["median_ms"] < CEILING_MEDIAN_MS[mode], results[mode]
        assert results[mode]["sequential"]["p95_ms"] < CEILING_P95_MS[mode], results[mode]
