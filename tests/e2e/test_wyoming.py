"""Home Assistant's side of the Wyoming protocol against the whole stack `whisp up` runs.

The `wyoming` library's own client (what Home Assistant uses) sends real speech made with
espeak-ng as Home Assistant does — `transcribe`, `audio-start`, ~64-ms `audio-chunk`s,
`audio-stop` — and reads the streaming events back. The words must be right (WER), come in
the protocol's order, silence must stay empty, and every transcript must be in the local
user's history like any other recording's.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import numpy.typing as npt
import pytest
from wyoming.asr import Transcribe
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.event import Event
from wyoming.info import Describe, Info

from tests.support.processes import WhispUp
from tests.support.speech import SENTENCES, read_wav, synthesize, word_error_rate
from whisp_cli.redis_server import free_port

pytestmark = pytest.mark.e2e

MAX_WER = 0.25
SAMPLES_PER_CHUNK = 1024  # Home Assistant's chunk: 64 ms at 16 kHz
CLIPS = ("late-for-dinner", "kitchen-lights", "dentist")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[WhispUp, str]]:
    """`whisp up` with its Wyoming server on a free port (set as Home Assistant users set
    it, by the environment); the stack and the `tcp://` URI its table shows."""
    tmp = tmp_path_factory.mktemp("stack")
    port = free_port()
    up = WhispUp(
        tmp / "data",
        tmp / "logs",
        workers=1,
        env={
            "WHISP_WEB__WYOMING__PORT": str(port),
            "WHISP_WEB__RATE_LIMIT": "1000/minute",
            "WHISP_AGENTS__LOCAL_LLM__ENABLED": "false",  # no agent is asked here
        },
        unset=("REDIS_URL", "DATABASE_URL"),
        stop_timeout=90,
    )
    with up:
        shown = re.findall(r"wyoming\W+-\W+\w+\W+(tcp://127\.0\.0\.1:\d+)", up.banner)
        assert shown == [f"tcp://127.0.0.1:{port}"], up.banner
        yield up, shown[0]
    assert not up.killed, f"whisp up did not stop in 90 s:\n{up.output[-3000:]}"


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, Path]]:
    out = tmp_path_factory.mktemp("speech")
    return {u.id: (u.text, synthesize(u, out)) for u in SENTENCES if u.id in CLIPS}


def pcm16(samples: npt.NDArray[np.float32], rate: int = 16_000) -> bytes:
    if rate != 16_000:
        positions = np.arange(0, len(samples) * rate // 16_000) * 16_000 / rate
        samples = np.interp(positions, np.arange(len(samples)), samples).astype(np.float32)
    return (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()


async def transcribe(
    uri: str, audio: bytes, rate: int = 16_000, paced: bool = False
) -> tuple[list[Event], float]:
    """Home Assistant's request; every event back, and seconds from audio-stop to the text."""
    seen: list[Event] = []
    step = SAMPLES_PER_CHUNK * 2
    async with AsyncTcpClient.from_uri(uri) as client:
        await client.write_event(Transcribe(language="en").event())
        await client.write_event(AudioStart(rate, 2, 1).event())
        for i in range(0, len(audio), step):
            await client.write_event(AudioChunk(rate, 2, 1, audio[i : i + step]).event())
            if paced:  # as a microphone delivers it
                await asyncio.sleep(SAMPLES_PER_CHUNK / rate)
        stopped = time.perf_counter()
        await client.write_event(AudioStop().event())
        async with asyncio.timeout(60):
            while (event := await client.read_event()) is not None:
                seen.append(event)
                assert event.type != "error", event
                if event.type == "transcript":
                    final_s = time.perf_counter() - stopped
                if event.type == "transcript-stop":
                    break
    return seen, final_s


async def test_describe_tells_home_assistant_what_it_serves(stack: tuple[WhispUp, str]) -> None:
    _up, uri = stack
    async with AsyncTcpClient.from_uri(uri) as client:
        await client.write_event(Describe().event())
        event = await client.read_event()
    assert event is not None
    info = Info.from_event(event)
    (program,) = info.asr
    assert program.name == "whisptt"
    assert program.supports_transcript_streaming
    assert program.models[0].languages == ["en"]


async def test_spoken_clips_are_transcribed_in_order_and_land_in_the_history(
    stack: tuple[WhispUp, str], clips: dict[str, tuple[str, Path]]
) -> None:
    up, uri = stack
    results: dict[str, tuple[list[Event], float]] = {}
    for n, clip in enumerate(CLIPS):
        samples, _rate = read_wav(clips[clip][1])
        rate = 22_050 if clip == "kitchen-lights" else 16_000  # converted on the way in
        results[clip] = await transcribe(uri, pcm16(samples, rate), rate, paced=n == 0)
    async with httpx.AsyncClient(base_url=up.url) as http:
        history = (await http.get("/api/transcripts", params={"limit": 50})).json()["items"]

    stored = [t["text"] for t in history if t["status"] == "done"]
    for clip, (seen, final_s) in results.items():
        text = clips[clip][0]
        kinds = [e.type for e in seen]
        final = next(e.data["text"] for e in seen if e.type == "transcript")
        print(f"{clip}: stop -> transcript {final_s * 1000:.0f} ms; {final!r}")
        assert kinds[0] == "transcript-start"
        assert kinds[-2:] == ["transcript", "transcript-stop"]
        assert set(kinds[1:-2]) <= {"transcript-chunk"}
        assert word_error_rate(text, final) <= MAX_WER, final
        assert stored.count(final) == 1, (final, stored)
    paced, _ = results[CLIPS[0]]
    streamed = "".join(e.data["text"] for e in paced if e.type == "transcript-chunk")
    assert streamed, "no transcript-chunk while the audio came"
    assert word_error_rate(" ".join(clips[CLIPS[0]][0].split()[: len(streamed.split())]),
                           streamed) <= 0.35, streamed  # fmt: skip


async def test_silence_stays_empty(stack: tuple[WhispUp, str]) -> None:
    _up, uri = stack
    seen, _ = await transcribe(uri, bytes(2 * 16_000 * 2))  # two seconds of digital silence
    assert [e.data["text"] for e in seen if e.type == "transcript"] == [""]
    assert [e.type for e in seen if e.type == "transcript-chunk"] == []
