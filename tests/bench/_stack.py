"""Wyoming for benchmarks: Home Assistant's own STT server as a process beside `whisp up`,
and the one client both it and ours are measured with.

- `Peer`: `python -m wyoming_faster_whisper` (3.8.1) in its own session on a free port,
  offline (`--local-files-only`) on a local model folder, with the engine flags taken from
  a `FasterWhisperSettings` (compute type, beam size, cpu threads), so it runs what our
  worker runs; its output goes to a log, kept for the failure message when it ends early.
- `describe` / `wait_described`: a server's `info`, once it answers (readiness: the peer
  loads its model before it listens; ours comes with the gateway).
- `stream_clip`: one utterance as Home Assistant's STT client sends it (`transcribe`,
  `audio-start`, PCM16 `audio-chunk`s, `audio-stop`), chunk i once its audio was "captured"
  (start + (i + 1) x CHUNK_S: a satellite streams the microphone live), every server event
  stamped on arrival (`time.perf_counter`) until `transcript`.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Describe, Info

from tests.bench._streaming import CHUNK_S, RATE_IN, LiveClip
from whisp_cli.redis_server import free_port
from whisp_cli.stack import stop_processes
from whisp_transcription.settings import FasterWhisperSettings

HOST = "127.0.0.1"
WIDTH = 2
LANGUAGE = "en"


async def describe(port: int) -> Info:
    async with AsyncTcpClient(HOST, port, connect_timeout=2, read_timeout=10) as client:
        await client.write_event(Describe().event())
        while (event := await client.read_event()) is not None:
            if Info.is_type(event.type):
                return Info.from_event(event)
    raise AssertionError(f"port {port} closed without answering describe")


async def wait_described(port: int, alive: Callable[[], str | None], timeout_s: float) -> Info:
    """The server's `info` once it answers `describe`; an AssertionError with `alive()`'s
    complaint (its process ended: its log) or on timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        if problem := alive():
            raise AssertionError(problem)
        with contextlib.suppress(OSError, TimeoutError):
            return await describe(port)
        if time.monotonic() > deadline:
            raise AssertionError(f"nothing answered describe on port {port} in {timeout_s} s")
        await asyncio.sleep(0.2)


def info_view(info: Info) -> dict[str, Any]:
    """What a server says of its ASR programs (each model's language list as its length)."""
    programs = [program.to_dict() for program in info.asr]
    for program in programs:
        for model in program["models"]:
            model["languages"] = len(model["languages"])
    return {"asr": programs}


def pcm16(clip: LiveClip) -> bytes:
    with wave.open(str(clip.wav16), "rb") as wav:
        assert (wav.getframerate(), wav.getsampwidth()) == (RATE_IN, WIDTH)
        return wav.readframes(wav.getnframes())


async def stream_clip(port: int, clip: LiveClip, timeout_s: float = 60.0) -> dict[str, Any]:
    """Stream `clip` at real time, `audio-stop` at once after the last chunk: stop ->
    `transcript` seconds, its text, transcript-chunks that came while audio flowed."""
    pcm, step = pcm16(clip), round(RATE_IN * CHUNK_S) * WIDTH
    fmt = {"rate": RATE_IN, "width": WIDTH, "channels": 1}
    events: list[tuple[float, Event]] = []
    async with AsyncTcpClient(HOST, port, connect_timeout=5) as client:

        async def receive() -> None:
            while (event := await client.read_event()) is not None:
                events.append((time.perf_counter(), event))
                assert not Error.is_type(event.type), (clip.id, event.data)
                if Transcript.is_type(event.type):
                    return
            raise AssertionError(f"{clip.id}: the server closed before a transcript")

        reader = asyncio.create_task(receive())
        try:
            await client.write_event(Transcribe(language=LANGUAGE).event())
            await client.write_event(AudioStart(**fmt).event())
            start, lag = time.perf_counter(), 0.0
            for n, at in enumerate(range(0, len(pcm), step)):
                due = start + (n + 1) * CHUNK_S
                await asyncio.sleep(max(due - time.perf_counter(), 0.0))
                lag = max(lag, time.perf_counter() - due)
                await client.write_event(AudioChunk(audio=pcm[at : at + step], **fmt).event())
            stopped = time.perf_counter()
            await client.write_event(AudioStop().event())
            async with asyncio.timeout(timeout_s):
                await reader
        finally:
            reader.cancel()
    arrived, final = events[-1]
    assert arrived > stopped, f"{clip.id}: a transcript before audio-stop"
    return {
        "seconds": arrived - stopped,
        "text": Transcript.from_event(final).text.strip(),
        "transcript_chunks_before_stop": sum(
            t < stopped and e.type == "transcript-chunk" for t, e in events
        ),
        "event_types": sorted({e.type for _t, e in events}),
        "max_send_lag_s": lag,
    }


class Peer:
    """wyoming-faster-whisper on `model_dir` with `engine`'s flags; `stop()` ends it."""

    def __init__(self, model_dir: str, work: Path, engine: FasterWhisperSettings) -> None:
        self.port = free_port()
        self.log = work / "peer.log"
        self.command = [
            sys.executable, "-m", "wyoming_faster_whisper", "--uri", f"tcp://{HOST}:{self.port}",
            "--model", model_dir, "--data-dir", str(work / "peer-data"), "--local-files-only",
            "--compute-type", engine.compute_type, "--beam-size", str(engine.beam_size),
            "--cpu-threads", str(engine.cpu_threads), "--language", LANGUAGE,
        ]  # fmt: skip
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                self.command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def problem(self) -> str | None:
        """None while it runs; once it has ended, its exit code and the end of its log."""
        code = self.process.poll()
        if code is None:
            return None
        return f"the peer exited with {code}:\n{self.log.read_text(errors='replace')[-3000:]}"

    def stop(self) -> None:
        stop_processes([self.process], 15)
