"""Helpers for the streaming benchmark (tests/bench/test_streaming_bench.py).

- `EXTRA_5S`: five more ~5-s sentences, each in a voice of its own, so eight concurrent
  streams are eight different clips (with `_short_window.CORPUS["5s"]`).
- `LiveClip`: one clip as a held key sends it: cut to `TAIL_S` of silence after the speech,
  where the speech starts, as a 24 kHz WAV (sox) and as that WAV's PCM16 in 100-ms base64
  chunks (what OpenAI's clients send). The batch path uploads the very same WAV, and the
  bare decode is given what `decode_audio` makes of it: every path starts from one file.
- `open_session` / `stream`: a plain `websockets` client of `/v1/realtime?intent=transcription`
  that sends chunk *i* when its audio has been "captured" (at start + (i + 1) x 100 ms) and
  commits right after the last one, as a key let go; every server event is stamped on
  arrival.
- `PartialWatch`: the user's `/api/events` SSE stream, read throughout; the arrival of every
  `transcript.partial` per recording.
- `cpu_ticks`: utime + stime of some pids (the workers), from /proc.

Every stamp is `time.time()`: one clock for this process and the stack's event timestamps
(`TranscriptReady.created_at`), all on this machine.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt
from websockets.asyncio.client import ClientConnection, connect

from tests.bench._procs import process_cpu_ticks
from tests.support.speech import Utterance, normalize, read_wav, write_wav
from whisp_shared.audio import decode_audio

U = Utterance
EXTRA_5S: list[Utterance] = [
    U("Please send the monthly report to the finance team before lunch tomorrow.",
      "en-029", 160, id="c5-report"),
    U("Turn the heating down a little and open the window in the back bedroom.",
      "en-gb-x-gbclan", 160, id="c5-heating"),
    U("Ask the people next door if they could keep an eye on the house while we travel.",
      "en-gb-x-gbcwmd", 160, id="c5-next-door"),
    U("Write down that the plumber is coming on Thursday morning to fix the sink.",
      "en-us+f4", 165, id="c5-plumber"),
    U("Find me a quiet place to work near the station with good coffee and cake.",
      "en+m2", 160, id="c5-coffee"),
]  # fmt: skip

RATE_IN = 16_000
RATE_OUT = 24_000
CHUNK_S = 0.1
TAIL_S = 0.4
"""Silence after the last word before the key is let go (people take 0.3-0.5 s)."""
SPEECH_DBFS = -50.0
"""A 10-ms frame louder than this is speech (sox pads espeak-ng's output with zeros)."""
FRAME = RATE_IN // 100


def _speech_bounds(samples: npt.NDArray[np.float32]) -> tuple[int, int]:
    """First and one-past-last sample of the frames louder than SPEECH_DBFS."""
    frames = len(samples) // FRAME
    power = (samples[: frames * FRAME].reshape(frames, FRAME).astype(np.float64) ** 2).mean(1)
    loud = np.flatnonzero(10 * np.log10(power + 1e-12) > SPEECH_DBFS)
    assert len(loud), "no speech in the clip"
    return int(loud[0]) * FRAME, (int(loud[-1]) + 1) * FRAME


@dataclass(frozen=True)
class LiveClip:
    bucket: str
    utterance: Utterance
    wav16: Path
    """The 16 kHz clip as made (cut to TAIL_S after the speech)."""
    wav: Path
    """The same at 24 kHz (sox, band-limited): streamed, uploaded and bare-decoded."""
    decoded: npt.NDArray[np.float32]
    """`wav` as a worker's `decode_audio` reads an upload (what the bare decode is given)."""
    onset_s: float
    """Where the speech starts (after the leading pad)."""
    duration_s: float
    chunks: tuple[str, ...]

    @property
    def id(self) -> str:
        return self.utterance.id

    @property
    def onset_chunk(self) -> int:
        """The first chunk holding speech."""
        return int(self.onset_s / CHUNK_S)


def live_clip(bucket: str, utterance: Utterance, path: Path, out_dir: Path) -> LiveClip:
    """The clip cut to TAIL_S of silence after its speech, at 24 kHz as a client sends it.

    The 24 kHz audio is sox's band-limited conversion, not a linear interpolation: a
    linear 16 -> 24 kHz step dulls the top octave and alone moves tiny.en's WER by several
    points once the audio service brings it back to 16 kHz (measured while writing this).
    """
    samples, rate = read_wav(path)
    assert rate == RATE_IN, (path, rate)
    start, end = _speech_bounds(samples)
    cut = end + round(TAIL_S * RATE_IN)
    samples = np.concatenate([samples[:cut], np.zeros(max(cut - len(samples), 0), np.float32)])
    wav16 = write_wav(out_dir / f"{utterance.id}-16k.wav", samples)
    wav = out_dir / f"{utterance.id}.wav"
    subprocess.run(
        ["sox", "-D", str(wav16), "-r", str(RATE_OUT), "-b", "16", "-c", "1", str(wav)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    with wave.open(str(wav), "rb") as stored:
        assert stored.getframerate() == RATE_OUT and stored.getsampwidth() == 2
        pcm = stored.readframes(stored.getnframes())
    step = round(RATE_OUT * CHUNK_S) * 2
    chunks = tuple(base64.b64encode(pcm[i : i + step]).decode() for i in range(0, len(pcm), step))
    return LiveClip(
        bucket,
        utterance,
        wav16,
        wav,
        decode_audio(wav.read_bytes()),
        start / RATE_IN,
        len(pcm) / 2 / RATE_OUT,
        chunks,
    )


# --- the Realtime client ---------------------------------------------------------------

SESSION = {
    "type": "transcription",
    "audio": {
        "input": {
            "format": {"type": "audio/pcm", "rate": RATE_OUT},
            "transcription": {"model": "gpt-4o-transcribe", "language": "en"},
            "turn_detection": None,
        }
    },
}
COMPLETED = "conversation.item.input_audio_transcription.completed"
FAILED = "conversation.item.input_audio_transcription.failed"
DELTA = "conversation.item.input_audio_transcription.delta"


@dataclass
class Streamed:
    """One utterance streamed: when each thing was sent and arrived (time.time())."""

    clip: LiveClip
    started: float = 0.0
    speech_sent: float = 0.0
    commit_sent: float = 0.0
    max_send_lag_s: float = 0.0
    """How late the client sent a chunk against its schedule (the pace it kept)."""
    events: list[tuple[float, dict[str, Any]]] = field(default_factory=list)

    def first(self, kind: str) -> tuple[float, dict[str, Any]]:
        return next((t, e) for t, e in self.events if e["type"] == kind)

    @property
    def completed(self) -> dict[str, Any]:
        return self.first(COMPLETED)[1]

    @property
    def item_id(self) -> str:
        return str(self.completed["item_id"])

    @property
    def commit_to_final_s(self) -> float:
        return self.first(COMPLETED)[0] - self.commit_sent

    @property
    def commit_to_committed_s(self) -> float:
        return self.first("input_audio_buffer.committed")[0] - self.commit_sent

    @property
    def deltas(self) -> list[tuple[float, dict[str, Any]]]:
        return [(t, e) for t, e in self.events if e["type"] == DELTA]

    @property
    def speech_to_first_delta_s(self) -> float | None:
        deltas = self.deltas
        return deltas[0][0] - self.speech_sent if deltas else None

    @property
    def deltas_while_held(self) -> int:
        return sum(t < self.commit_sent for t, _e in self.deltas)

    @property
    def settled(self) -> str:
        """The text the deltas settled, in order."""
        return "".join(e["delta"] for _t, e in self.deltas)

    @property
    def settled_words_kept(self) -> bool:
        """The words the deltas settled are where the final starts (none taken back)."""
        settled = normalize(self.settled).split()
        return normalize(self.completed["transcript"]).split()[: len(settled)] == settled


async def open_session(url: str, token: str) -> ClientConnection:
    """A Realtime transcription session at 24 kHz, push-to-talk, once `session.updated`."""
    ws = await connect(url, additional_headers={"Authorization": f"Bearer {token}"})
    await ws.send(json.dumps({"type": "session.update", "session": SESSION}))
    while (kind := json.loads(await ws.recv())["type"]) != "session.updated":
        assert kind in ("session.created",), kind
    return ws


async def _receive(ws: ClientConnection, out: Streamed) -> None:
    while True:
        event = json.loads(await ws.recv())
        out.events.append((time.time(), event))
        assert event["type"] not in ("error", FAILED), (out.clip.id, event)
        if event["type"] == COMPLETED:
            return


async def stream(ws: ClientConnection, clip: LiveClip, timeout_s: float = 60.0) -> Streamed:
    """Send the clip at its pace, commit at once after the last chunk, wait for the final."""
    out = Streamed(clip)
    reader = asyncio.create_task(_receive(ws, out))
    out.started = start = time.time()
    try:
        for n, chunk in enumerate(clip.chunks):
            due = start + (n + 1) * CHUNK_S  # chunk n is whole once its audio was captured
            await asyncio.sleep(max(due - time.time(), 0.0))
            now = time.time()
            out.max_send_lag_s = max(out.max_send_lag_s, now - due)
            if n == clip.onset_chunk:
                out.speech_sent = now
            await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": chunk}))
        out.commit_sent = time.time()
        await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
        async with asyncio.timeout(timeout_s):
            await reader
    finally:
        reader.cancel()
    return out


# --- partials on the SSE stream --------------------------------------------------------


@dataclass
class PartialWatch:
    """Every `transcript.partial` the user's SSE stream carries: recording id -> arrivals
    (time.time(), text, audio ms covered)."""

    url: str
    token: str
    seen: dict[str, list[tuple[float, str, int]]] = field(default_factory=dict)
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        timeout = httpx.Timeout(10.0, read=None)
        async with (
            httpx.AsyncClient(base_url=self.url, timeout=timeout) as client,
            client.stream("GET", "/api/events", headers=headers) as response,
        ):
            response.raise_for_status()
            self.ready.set()
            kind = ""
            async for line in response.aiter_lines():
                if line.startswith("event:"):
                    kind = line[6:].strip()
                elif line.startswith("data:") and kind == "transcript.partial":
                    data = json.loads(line[5:])
                    arrivals = self.seen.setdefault(data["recording_id"], [])
                    arrivals.append((time.time(), data["text"], int(data["sequence"])))
                elif not line:
                    kind = ""

    def first_words(self, recording_id: str) -> tuple[float, int] | None:
        """When the first partial with words arrived, and the audio ms it covered."""
        return next(
            ((t, seq) for t, text, seq in self.seen.get(recording_id, []) if text.strip()), None
        )


def cpu_ticks(pids: list[int]) -> int:
    return sum(process_cpu_ticks(pid) for pid in pids)


def whisp_status(data_dir: Path) -> dict[str, dict[str, Any]]:
    """`whisp status --json`: every service of the stack by name (pid, url, ...)."""
    done = subprocess.run(
        [sys.executable, "-m", "whisp_cli.main", "status", "--data-dir", str(data_dir), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    return {s["name"]: s for s in json.loads(done.stdout)["services"]}


# --- the picture -----------------------------------------------------------------------

LENGTH_MEASURES = {
    "commit_to_final": "stream: commit → final",
    "batch_upload_to_text": "batch /v1: upload → text",
    "bare_decode": "bare decode (in process)",
}


def grouped_bars(ax: Any, groups: list[str], series: dict[str, list[tuple[float, float]]]) -> None:
    """Grouped bars (median) with p95 whiskers, the median written above each."""
    width = 0.8 / len(series)
    for n, (label, values) in enumerate(series.items()):
        xs = [i - 0.4 + width * (n + 0.5) for i in range(len(groups))]
        meds = [m for m, _p in values]
        up = [max(p - m, 0.0) for m, p in values]
        ax.bar(xs, meds, width, label=label)
        ax.errorbar(xs, meds, yerr=[[0.0] * len(meds), up], fmt="none", ecolor="black",
                    capsize=3, linewidth=0.8)  # fmt: skip
        for x, (m, _p) in zip(xs, values, strict=True):
            text = f"{m:.0f}" if m else "none"
            ax.annotate(text, (x, m), ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(groups)))
    ax.grid(True, axis="y", alpha=0.3)


def plot(data: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res = data["results"]
    single, conc = res["single_stream"], res["concurrency"]
    buckets = list(single)
    fig, (lat_ax, first_ax, conc_ax) = plt.subplots(1, 3, figsize=(18, 6))

    grouped_bars(lat_ax, buckets, {
        label: [(single[b][k]["median_ms"], single[b][k]["p95_ms"]) for b in buckets]
        for k, label in LENGTH_MEASURES.items()
    })  # fmt: skip
    lat_ax.axhline(data["targets"]["5s_commit_to_final_p50_ms"], color="red", linestyle="--",
                   linewidth=0.8, label="target: 5 s commit → final p50 ≤ 150 ms")  # fmt: skip
    lat_ax.set_xticklabels([
        f"{b} ({min(single[b]['audio_s']):.1f}-{max(single[b]['audio_s']):.1f} s)\n"
        f"final/batch {single[b]['ratios']['final_over_batch']:.2f}\n"
        f"final/bare {single[b]['ratios']['final_over_bare']:.2f}"
        for b in buckets
    ], fontsize=8)  # fmt: skip
    lat_ax.set_ylabel("ms: bar = median, whisker = p95")
    lat_ax.set_title("1 stream at a time: final text after release", fontsize=10)
    lat_ax.set_ylim(0, lat_ax.get_ylim()[1] * 1.3)
    lat_ax.legend(fontsize=8, loc="upper right")

    grouped_bars(first_ax, buckets, {
        "first ...delta (stable words, WebSocket)": [
            (single[b]["speech_to_first_delta"].get("median_ms", 0.0),
             single[b]["speech_to_first_delta"].get("p95_ms", 0.0)) for b in buckets],
        "first transcript.partial with words (SSE)": [
            (single[b]["speech_to_first_sse_partial"].get("median_ms", 0.0),
             single[b]["speech_to_first_sse_partial"].get("p95_ms", 0.0)) for b in buckets],
    })  # fmt: skip
    first_ax.set_xticklabels(buckets)
    first_ax.set_ylabel("ms from the first chunk holding speech")
    wer = res["accuracy"]["corpus_wer"]
    cpu = res["cpu"]["worker_cpu_s_per_audio_s"]
    first_ax.set_title(
        f"speech → first partial; corpus WER streamed {wer['streamed']:.3f}, batch "
        f"{wer['batch']:.3f}\nworker CPU s per audio s: stream {cpu['stream']:.3f}, "
        f"batch {cpu['batch']:.3f}",
        fontsize=9,
    )
    first_ax.set_ylim(0, first_ax.get_ylim()[1] * 1.3)
    first_ax.legend(fontsize=8, loc="upper left")

    levels = [int(k) for k in conc]
    for key, label, style in (
        ("commit_to_final", "commit → final", "o-"),
        ("speech_to_first_delta", "speech → first delta", "s-"),
    ):
        for stat, dash in (("median_ms", ""), ("p95_ms", "--")):
            values = [conc[str(n)][key].get(stat, float("nan")) for n in levels]
            conc_ax.plot(levels, values, style[0] + (dash or "-"), label=f"{label} {stat[:-3]}")
    conc_ax.axhline(data["targets"]["5s_commit_to_final_p50_ms"], color="red", linestyle=":",
                    linewidth=0.8, label="target: commit → final p50 (1 stream)")  # fmt: skip
    conc_ax.set_xscale("log", base=2)
    conc_ax.set_xticks(levels)
    conc_ax.set_xticklabels([
        f"{n}\nworkers {conc[str(n)]['worker_cores_busy']:.2f} cores" for n in levels
    ], fontsize=8)  # fmt: skip
    conc_ax.set_xlabel("concurrent ~5-s streams on 2 workers")
    conc_ax.set_ylabel("ms")
    conc_ax.set_ylim(bottom=0)
    conc_ax.set_title("latency vs concurrent live streams", fontsize=10)
    conc_ax.grid(True, alpha=0.3)
    conc_ax.legend(fontsize=8, loc="upper left")
    fig.suptitle("WhisPTT streaming push-to-talk (tiny.en int8, 2 workers, 2 cores)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
