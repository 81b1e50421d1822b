"""Helpers for the short-window benchmark (tests/bench/test_short_window_bench.py).

- `CORPUS`: dictation in four length buckets (about 2, 5, 10 and 20 s), three sentences
  each, every one in a different espeak-ng voice; the same rules as tests/support/speech
  (no digits, number words, abbreviations or spelling pairs, so 0 WER needs no
  normalisation).
- `summary`: n, median, p95, min and max of latencies, in ms.
- `TreeCpuWatch`: the CPU *other* programs took during a sample, in cores. As
  `tests.bench._procs.CpuWatch`, but "ours" is this process's whole tree, read at every
  snapshot: `whisp up` and its services, their Redis, Playwright's driver and Chromium's
  processes, which come and go (a child reaped meanwhile is in its parent's cutime/cstime).
- `Interference`: run a sample again when others took more than a limit (bounded).
- `scrape`/`decode_paths`: a service's /metrics, and the decode-path counter in it.
- `plot`: the PNG.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.bench._procs import HZ, machine_busy_ticks
from tests.support.speech import Utterance, corpus_wer, word_error_rate

U = Utterance
CORPUS: dict[str, list[Utterance]] = {
    "2s": [
        U("Open the garage door.", "en-us", 170, id="b2-garage"),
        U("Pause the music.", "en+f3", 160, id="b2-music"),
        U("Call my brother now.", "en-gb-scotland", 150, id="b2-brother"),
    ],
    "5s": [
        U(
            "Remind me to buy some fresh flowers for my mother on the way home tonight.",
            "en-us+f2",
            165,
            id="b5-flowers",
        ),
        U(
            "Please move the blue folder from my desk into the top drawer of the cupboard.",
            "en-gb",
            150,
            id="b5-folder",
        ),
        U(
            "Tell the team that the weekly meeting has moved to the small room upstairs.",
            "en-us-nyc",
            160,
            id="b5-meeting",
        ),
    ],
    "10s": [
        U(
            "I would like to book a table for dinner on Saturday evening, somewhere quiet "
            "with a garden, and please ask whether they can bring a birthday cake to the "
            "table at the end.",
            "en+m7",
            165,
            id="b10-dinner",
        ),
        U(
            "The new printer upstairs keeps jamming whenever someone prints on both sides "
            "of the paper, so please put a note on it until the engineer arrives.",
            "en-gb-x-rp+f3",
            150,
            id="b10-printer",
        ),
        U(
            "Remember to water the tomatoes in the greenhouse, close the windows before it "
            "rains, and feed the cat when you get back from the shops this afternoon.",
            "en-us+m3",
            160,
            id="b10-tomatoes",
        ),
    ],
    "20s": [
        U(
            "Good morning everyone. Before we start, I want to thank the support team for "
            "their patience during the busy weekend. Most of the problems came from a faulty "
            "switch in the basement, which has now been replaced. If you still see slow "
            "connections today, please write to the help desk and include the name of your "
            "computer.",
            "en-gb-x-rp",
            160,
            id="b20-support",
        ),
        U(
            "Dear Anna, I hope your journey home was pleasant and that the weather stayed "
            "kind to you. We all enjoyed the evening very much, and the children have not "
            "stopped talking about the magic tricks you showed them. Please send us the "
            "recipe for that lemon tart when you have a moment, and give our love to your "
            "parents.",
            "en-us",
            160,
            id="b20-anna",
        ),
        U(
            "Quick summary of the call with the supplier. They can deliver the chairs by the "
            "end of the month, but the tables will take longer because the factory is "
            "waiting for wood. They offered a small discount if we accept a partial "
            "delivery, and I think we should say yes, as long as the chairs arrive before "
            "the opening.",
            "en-gb-scotland",
            155,
            id="b20-supplier",
        ),
    ],
}
BUCKET_RANGES_S = {"2s": (1.5, 3.0), "5s": (4.0, 6.0), "10s": (8.5, 11.5), "20s": (17.0, 22.0)}
"""What each bucket's clips must last (checked, so a voice change cannot move a clip)."""


@dataclass(frozen=True)
class BenchClip:
    bucket: str
    utterance: Utterance
    path: Path
    duration_s: float
    speech_s: float
    """Speech Silero VAD finds in it: what the short window encodes."""

    @property
    def id(self) -> str:
        return self.utterance.id


def summary(seconds: list[float]) -> dict[str, float]:
    """n, median, p95 (inclusive quantiles), min, max, in ms."""
    values = sorted(s * 1000 for s in seconds)
    p95 = (
        statistics.quantiles(values, n=20, method="inclusive")[18] if len(values) > 1 else values[0]
    )
    return {
        "n": len(values),
        "median_ms": round(statistics.median(values), 1),
        "p95_ms": round(p95, 1),
        "min_ms": round(values[0], 1),
        "max_ms": round(values[-1], 1),
    }


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b else float("nan")


# --- other programs' CPU ----------------------------------------------------------------


def _proc_table() -> dict[int, tuple[int, int]]:
    """pid -> (ppid, utime + stime + cutime + cstime) of every live process."""
    table: dict[int, tuple[int, int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        table[int(entry.name)] = (int(fields[1]), sum(int(f) for f in fields[11:15]))
    return table


def tree_ticks(root: int) -> int:
    """CPU ticks of `root` and every live process below it (with their reaped children)."""
    table = _proc_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _ticks) in table.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += table.get(pid, (0, 0))[1]
        todo.extend(children.get(pid, []))
    return total


class TreeCpuWatch:
    def __init__(self, root: int | None = None) -> None:
        self.root = root or os.getpid()

    def snapshot(self) -> tuple[float, int, int]:
        return time.monotonic(), machine_busy_ticks(), tree_ticks(self.root)

    def others_cores(self, before: tuple[float, int, int]) -> float:
        after = self.snapshot()
        wall = after[0] - before[0]
        others = (after[1] - before[1]) - (after[2] - before[2])
        return round(max(others, 0) / HZ / wall, 3) if wall > 0 else 0.0


T = TypeVar("T")


@dataclass
class Interference:
    """A sample during which others took more than `limit_cores` is taken again, up to
    `tries` times and `budget_s` of thrown-away wall time in all; then kept (and counted)."""

    watch: TreeCpuWatch
    limit_cores: float
    tries: int
    budget_s: float
    retried: int = 0
    kept_anyway: int = 0
    others: list[float] = field(default_factory=list)

    def quiet(self, measure: Callable[[], T]) -> tuple[T, float]:
        for attempt in range(1, self.tries + 1):
            before = self.watch.snapshot()
            value = measure()
            others = self.watch.others_cores(before)
            if others <= self.limit_cores or attempt == self.tries or self.budget_s <= 0:
                self.kept_anyway += others > self.limit_cores
                self.others.append(others)
                return value, others
            self.retried += 1
            self.budget_s -= time.monotonic() - before[0]
        raise AssertionError("unreachable")

    def as_dict(self) -> dict[str, Any]:
        return {
            "limit_others_cores": self.limit_cores,
            "tries_per_sample": self.tries,
            "retried": self.retried,
            "kept_anyway": self.kept_anyway,
            "retry_budget_left_s": round(self.budget_s, 1),
            "others_cores_median": round(median(self.others), 3) if self.others else None,
            "others_cores_max": max(self.others, default=None),
        }


# --- metrics ---------------------------------------------------------------------------

DECODE_PATH = "whisp_transcription_decode_path_total"


def scrape(base_url: str) -> list[tuple[str, dict[str, str], float]]:
    text = httpx.get(f"{base_url}/metrics", timeout=5).text
    return [
        (s.name, dict(s.labels), float(s.value))
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def decode_paths(samples: Iterable[tuple[str, dict[str, str], float]]) -> dict[str, float]:
    """{"short/ok": n, "full/fallback_repetition": n, ...} from /metrics samples."""
    return {
        f"{labels['path']}/{labels['reason']}": value
        for name, labels, value in samples
        if name == DECODE_PATH
    }


def new_paths(after: dict[str, float], before: dict[str, float]) -> list[str]:
    """The decode paths counted between two readings (one entry per clip)."""
    return [k for k, v in after.items() for _ in range(round(v - before.get(k, 0.0)))]


# --- aggregation ------------------------------------------------------------------

MEASURES = ("transcribe", "bare_decode", "engine_short", "stack")
"""Timed per clip in every round, back to back (see the bench's docstring)."""

Sample = dict[str, Any]
Samples = dict[str, dict[str, list[Sample]]]
"""clip id -> measure -> samples."""


def record(report: dict[str, Any], name: str, value: float, target: float | None) -> None:
    """A figure beside its target (a maximum; None: the issue sets none for it)."""
    report["ratios"][name] = {
        "value": value,
        "target_max": target,
        "meets_target": None if target is None else value <= target,
    }


def bucket_results(members: list[BenchClip], samples: Samples) -> dict[str, Any]:
    """One bucket: each measure's summary, the ratios and the stack's overhead."""

    def secs(measure: str) -> list[float]:
        return [s["seconds"] for c in members for s in samples[c.id][measure]]

    def others(measure: str) -> float:
        return round(median(s["others_cores"] for c in members for s in samples[c.id][measure]), 3)

    measures = {m: summary(secs(m)) | {"others_cores_median": others(m)} for m in MEASURES}
    med = {m: measures[m]["median_ms"] for m in MEASURES}
    paired = [
        st["seconds"] / tr["seconds"]
        for c in members
        for st, tr in zip(samples[c.id]["stack"], samples[c.id]["transcribe"], strict=True)
    ]
    bare = [s for c in members for s in samples[c.id]["bare_decode"]]
    return {
        "clips": [c.id for c in members],
        "audio_s_min": min(c.duration_s for c in members),
        "audio_s_max": max(c.duration_s for c in members),
        "measures": measures,
        "vad_median_ms": round(median(s["vad_s"] for s in bare) * 1000, 1),
        "decode_audio_median_ms": round(median(s["decode_audio_s"] for s in bare) * 1000, 1),
        "ratios": {
            "stack_over_transcribe": ratio(med["stack"], med["transcribe"]),
            "stack_over_transcribe_paired_median": round(median(paired), 3),
            "stack_over_bare_decode": ratio(med["stack"], med["bare_decode"]),
            "stack_over_engine_short": ratio(med["stack"], med["engine_short"]),
            "engine_short_over_transcribe": ratio(med["engine_short"], med["transcribe"]),
            "bare_decode_over_transcribe": ratio(med["bare_decode"], med["transcribe"]),
        },
        "overhead_ms": {
            "stack_minus_bare_decode": round(med["stack"] - med["bare_decode"], 1),
            "stack_minus_engine_short": round(med["stack"] - med["engine_short"], 1),
        },
    }


def breakdown(members: list[BenchClip], samples: Samples) -> dict[str, float]:
    """Medians of the stack's parts; the worker's engine share is the in-process median of
    the same clip's `engine_short` (the rest of `processing_s` is fetch, decode, hops)."""
    rows = []
    for c in members:
        engine_s = median(s["seconds"] for s in samples[c.id]["engine_short"])
        for s in samples[c.id]["stack"]:
            rows.append(
                {
                    "upload_to_published_ms": s["upload_to_published_s"],
                    "bus_and_bookkeeping_ms": s["published_to_transcribed_s"] - s["processing_s"],
                    "worker_fetch_decode_ms": s["processing_s"] - engine_s,
                    "worker_engine_ms": engine_s,
                    "worker_processing_ms": s["processing_s"],
                    "transcribed_to_client_ms": s["transcribed_to_client_s"],
                }
            )
    return {k: round(median(r[k] for r in rows) * 1000, 1) for k in rows[0]}


def accuracy(clips: list[BenchClip], samples: Samples) -> dict[str, Any]:
    """Per clip the first sample's text and WER of each path (greedy: the others agree,
    `distinct_texts` says if not), and the corpus WER of each."""
    names = {
        "full": "transcribe",
        "short": "engine_short",
        "bare": "bare_decode",
        "stack": "stack",
    }
    per_clip: dict[str, Any] = {}
    for c in clips:
        ref = c.utterance.text
        entry: dict[str, Any] = {"reference": ref}
        for name, measure in names.items():
            texts = [s["text"] for s in samples[c.id][measure]]
            entry[name] = {
                "text": texts[0],
                "wer": round(word_error_rate(ref, texts[0]), 4),
                "distinct_texts": len(set(texts)),
            }
            if "path" in samples[c.id][measure][0]:
                entry[name]["paths"] = sorted(
                    {p for s in samples[c.id][measure] for p in s["path"]}
                )
        entry["bare"]["outcomes"] = sorted({s["outcome"] for s in samples[c.id]["bare_decode"]})
        per_clip[c.id] = entry
    corpus = {
        name: round(corpus_wer((e["reference"], e[name]["text"]) for e in per_clip.values()), 4)
        for name in names
    }
    return {"per_clip": per_clip, "corpus_wer": corpus}


# --- the picture -----------------------------------------------------------------------

MEASURE_LABELS = {
    "transcribe": "transcribe() (full 30-s path)",
    "bare_decode": "bare short-window decode",
    "engine_short": "engine, short path (RMS+VAD+decode)",
    "stack": "stack: /v1 upload → text",
    "browser": "browser: release → text (1 clip, Opus)",
}
PARTS = {
    "upload_to_published_ms": "upload → RecordingCompleted published",
    "bus_and_bookkeeping_ms": "bus delivery + worker bookkeeping",
    "worker_fetch_decode_ms": "worker: fetch + decode_audio + thread",
    "worker_engine_ms": "worker: engine (in-process median)",
    "transcribed_to_client_ms": "TranscriptReady → gateway → client",
}


def plot(data: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res = data["results"]
    lat, buckets = res["latency"], list(res["latency"])
    fig, (lat_ax, part_ax, wer_ax) = plt.subplots(
        1, 3, figsize=(19, 6), gridspec_kw={"width_ratios": [1.5, 1, 1.2]}
    )
    measures = [m for m in MEASURE_LABELS if any(m in lat[b]["measures"] for b in buckets)]
    width = 0.8 / len(measures)
    for n, measure in enumerate(measures):
        xs = [i - 0.4 + width * (n + 0.5) for i in range(len(buckets))]
        meds = [lat[b]["measures"].get(measure, {}).get("median_ms", 0.0) for b in buckets]
        p95s = [lat[b]["measures"].get(measure, {}).get("p95_ms", 0.0) for b in buckets]
        lat_ax.bar(xs, meds, width, label=MEASURE_LABELS[measure])
        lat_ax.errorbar(
            xs,
            meds,
            yerr=[[0.0] * len(meds), [max(p - m, 0.0) for p, m in zip(p95s, meds, strict=True)]],
            fmt="none",
            ecolor="black",
            capsize=3,
            linewidth=0.8,
        )
        for x, value, top in zip(xs, meds, p95s, strict=True):
            if value:  # the median, written above its p95 whisker
                lat_ax.annotate(
                    f"{value:.0f}", (x, top), ha="center", va="bottom", fontsize=6, rotation=90
                )
    lat_ax.set_xticks(range(len(buckets)))
    lat_ax.set_xticklabels(
        [
            f"{b} ({lat[b]['audio_s_min']:.1f}-{lat[b]['audio_s_max']:.1f} s)\n"
            f"stack/transcribe {lat[b]['ratios']['stack_over_transcribe']:.2f}\n"
            f"stack/bare {lat[b]['ratios']['stack_over_bare_decode']:.2f}"
            for b in buckets
        ],
        fontsize=8,
    )
    lat_ax.set_ylabel("latency (ms): bar = median, whisker = p95")
    lat_ax.set_title("tiny.en int8, 1 thread: each measure per clip length", fontsize=10)
    lat_ax.legend(fontsize=8, loc="upper left")

    bottom = [0.0] * len(buckets)
    breakdown = res["stack_breakdown"]
    for part, name in PARTS.items():
        heights = [max(breakdown[b][part], 0.0) for b in buckets]
        part_ax.bar(range(len(buckets)), heights, 0.6, bottom=bottom, label=name)
        bottom = [a + h for a, h in zip(bottom, heights, strict=True)]
    for i, b in enumerate(buckets):
        total = lat[b]["measures"]["stack"]["median_ms"]
        part_ax.annotate(
            f"stack median {total:.0f} ms", (i, bottom[i]), ha="center", va="bottom", fontsize=8
        )
    part_ax.set_xticks(range(len(buckets)))
    part_ax.set_xticklabels(buckets)
    part_ax.set_ylabel("median of each part (ms)")
    part_ax.set_title("where the stack's time goes (/v1 upload → text)", fontsize=10)
    part_ax.legend(fontsize=7, loc="upper left")

    acc = res["accuracy"]
    ids = list(acc["per_clip"])
    xs2 = range(len(ids))
    full = [acc["per_clip"][i]["full"]["wer"] for i in ids]
    short = [acc["per_clip"][i]["short"]["wer"] for i in ids]
    wer_ax.bar([x - 0.2 for x in xs2], full, 0.4, label="full path")
    wer_ax.bar([x + 0.2 for x in xs2], short, 0.4, label="short path (engine)")
    wer_ax.set_xticks(list(xs2))
    wer_ax.set_xticklabels(ids, rotation=60, ha="right", fontsize=7)
    corpus = acc["corpus_wer"]
    memory = res.get("memory", {}).get("worker", {})
    wer_ax.set_title(
        f"WER per clip; corpus full {corpus['full']:.3f}, short {corpus['short']:.3f}\n"
        f"worker VmRSS {memory.get('VmRSS', float('nan'))} MB, "
        f"VmHWM {memory.get('VmHWM', float('nan'))} MB (target ≤ 350)",
        fontsize=9,
    )
    wer_ax.set_ylabel("word error rate")
    wer_ax.legend(fontsize=8)
    for ax in (lat_ax, part_ax, wer_ax):
        ax.grid(True, axis="y", alpha=0.3)
    fig.suptitle("WhisPTT short-window decode vs transcribe(), the stack and the browser")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
