"""Process helpers for the transcription benchmark.

- `vm_status_mb(pid)`: VmHWM (peak resident set) and VmRSS of a process, from /proc.
- `CpuWatch`: how much CPU programs other than ours took during a measurement.
- `RawEngineProcess`: the raw engine in its own process (`python -m tests.bench._procs`),
  with no bus, no web server and no Redis: it loads `FasterWhisperEngine` once (default
  settings: tiny.en, int8, cpu_threads=1), transcribes one warm-up clip, then for every
  JSON list of WAV paths it reads on stdin transcribes them in order (read + decode +
  `transcribe_sync`, the same work a worker's handler does) and answers one JSON line with
  monotonic start/end stamps, so a parent can time several such processes as one batch.
  On EOF it answers its own VmHWM/VmRSS and exits.

Protocol lines on stdout start with `RESULT ` so stray library output cannot break it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

PREFIX = "RESULT "
REPO_ROOT = Path(__file__).resolve().parents[2]


def vm_status_mb(pid: int | str = "self") -> dict[str, float]:
    """{"VmHWM": peak RSS, "VmRSS": current RSS} in MB (MiB) of a live process."""
    out: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            out[key] = round(int(value.split()[0]) / 1024, 1)  # kB
    return out


HZ = os.sysconf("SC_CLK_TCK")


def process_cpu_ticks(pid: int) -> int:
    """utime + stime of a live process, in clock ticks."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
    return int(fields[11]) + int(fields[12])


def machine_busy_ticks() -> int:
    """Non-idle CPU time of the whole machine (all CPUs), in clock ticks."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = values[:8]
    return user + nice + system + irq + softirq + steal


class CpuWatch:
    """CPU that *other* programs took while we measured, in cores: the machine's busy time
    minus that of our own processes (this one, redis-server, workers, raw processes).

    The benchmark shares its 2 CPUs with whatever else runs; a sample during which others
    used a noticeable share of a core measures them, not us.
    """

    def __init__(self, pids: list[int]) -> None:
        self.pids = [os.getpid(), *pids]

    def snapshot(self) -> tuple[float, int, int]:
        ours = sum(process_cpu_ticks(pid) for pid in self.pids)
        return time.monotonic(), machine_busy_ticks(), ours

    def others_cores(self, before: tuple[float, int, int]) -> float:
        after = self.snapshot()
        wall = after[0] - before[0]
        others = (after[1] - before[1]) - (after[2] - before[2])
        return round(max(others, 0) / HZ / wall, 3) if wall > 0 else 0.0


# --- the parent's side ---------------------------------------------------------------------


class RawEngineProcess:
    """One raw-engine child; `start` it, `run` batches, `close` for its peak memory."""

    def __init__(self, name: str, warmup: Path, log: Path) -> None:
        self.name = name
        self.log = log
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.bench._procs", str(warmup)],
            cwd=REPO_ROOT,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log.open("wb"),
            text=True,
        )
        self.info: dict[str, Any] = {}

    def _read(self) -> dict[str, Any]:
        stdout = self.process.stdout
        assert stdout is not None
        for line in stdout:
            if line.startswith(PREFIX):
                return json.loads(line[len(PREFIX) :])  # type: ignore[no-any-return]
        raise AssertionError(f"{self.name} ended early: {self.log.read_text()[-2000:]}")

    def wait_ready(self) -> dict[str, Any]:
        """Blocks until the model is loaded and warmed up; returns load/warm-up times."""
        self.info = self._read()
        return self.info

    def send(self, files: list[Path]) -> None:
        stdin = self.process.stdin
        assert stdin is not None
        stdin.write(json.dumps([str(f) for f in files]) + "\n")
        stdin.flush()

    def result(self) -> dict[str, Any]:
        """The answer to the last `send`: start/end (time.monotonic) and per-clip figures."""
        return self._read()

    def close(self) -> dict[str, float]:
        """EOF on stdin: the child answers its VmHWM/VmRSS and exits."""
        stdin = self.process.stdin
        assert stdin is not None
        stdin.close()
        memory = self._read()
        self.process.wait(timeout=30)
        return {k: float(v) for k, v in memory.items()}

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


# --- the child's side ----------------------------------------------------------------------


def _answer(out: IO[str], payload: dict[str, Any]) -> None:
    out.write(PREFIX + json.dumps(payload) + "\n")
    out.flush()


def main() -> None:
    from whisp_shared.audio import decode_audio
    from whisp_transcription.engines.base import Clip, TranscribeOptions
    from whisp_transcription.engines.faster_whisper_engine import FasterWhisperEngine
    from whisp_transcription.settings import FasterWhisperSettings

    out = sys.stdout
    sys.stdout = sys.stderr  # anything a library prints goes to the log, not the protocol

    settings = FasterWhisperSettings()
    engine = FasterWhisperEngine(settings)
    options = TranscribeOptions()

    def transcribe(path: Path) -> dict[str, Any]:
        started = time.perf_counter()
        raw = path.read_bytes()
        samples = decode_audio(raw)
        decoded = time.perf_counter()
        text = engine.transcribe_sync(Clip(samples, raw, "audio/wav"), options).text
        return {
            "seconds": time.perf_counter() - started,
            "decode_s": decoded - started,
            "text": text,
        }

    started = time.perf_counter()
    engine.load()
    loaded = time.perf_counter()
    after_load = vm_status_mb()
    warm = transcribe(Path(sys.argv[1]))
    _answer(
        out,
        {
            "pid": os.getpid(),
            "load_s": round(loaded - started, 3),
            "warmup_s": round(warm["seconds"], 3),
            "VmHWM_after_load": after_load["VmHWM"],
            "settings": settings.model_dump(mode="json", exclude={"model_cache_dir"}),
        },
    )
    for line in sys.stdin:
        files = [Path(p) for p in json.loads(line)]
        start = time.monotonic()
        clips = [transcribe(f) for f in files]
        end = time.monotonic()
        _answer(out, {"start": start, "end": end, "clips": clips})
    _answer(out, vm_status_mb())


if __name__ == "__main__":
    main()
