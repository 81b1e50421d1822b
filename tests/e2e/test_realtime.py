"""Streaming push-to-talk through the whole stack, with real Realtime clients.

`whisp up` runs every service as its own process; a clip made with espeak-ng is streamed
in 100-ms chunks at the pace it was spoken, as a held key would send it, by a plain
`websockets` client following OpenAI's protocol and by the `openai` SDK's own Realtime
client. Words must come back while "the key is held", the final transcript after the
commit, exactly once, and in the stored history.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt
import pytest
from openai import AsyncOpenAI
from websockets.asyncio.client import ClientConnection, connect

from tests.support.processes import WhispUp
from tests.support.speech import SENTENCES, read_wav, synthesize, word_error_rate

pytestmark = pytest.mark.e2e

CHUNK_S = 0.1
TAIL_S = 0.4  # the key is let go this long after the speech ends
MAX_WER = 0.25


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WhispUp]:
    tmp = tmp_path_factory.mktemp("stack")
    up = WhispUp(
        tmp / "data",
        tmp / "logs",
        workers=1,
        env={
            "WHISP_WEB__RATE_LIMIT": "1000/minute",
            "WHISP_AGENTS__LOCAL_LLM__ENABLED": "false",  # no agent is asked here
        },
        unset=("REDIS_URL", "DATABASE_URL"),
        stop_timeout=90,
    )
    with up:
        yield up
    assert not up.killed, f"whisp up did not stop in 90 s:\n{up.output[-3000:]}"


@pytest.fixture(scope="module")
def spoken(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, npt.NDArray[np.float32]]:
    utt = next(u for u in SENTENCES if u.id == "late-for-dinner")
    samples, _rate = read_wav(synthesize(utt, tmp_path_factory.mktemp("speech")))
    tail = np.zeros(int(TAIL_S * 16_000), np.float32)
    return utt.text, np.concatenate([samples, tail])


def pcm16_at(samples: npt.NDArray[np.float32], rate: int) -> bytes:
    """16 kHz float samples as PCM16 at `rate` (24 kHz is what OpenAI clients send)."""
    if rate != 16_000:
        positions = np.arange(0, len(samples) * rate // 16_000) * 16_000 / rate
        samples = np.interp(positions, np.arange(len(samples)), samples).astype(np.float32)
    return (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()


def chunks(pcm: bytes, rate: int) -> list[str]:
    step = int(rate * CHUNK_S) * 2
    return [base64.b64encode(pcm[i : i + step]).decode() for i in range(0, len(pcm), step)]


async def receive_until(ws: ClientConnection, kind: str, seen: list[dict[str, Any]]) -> None:
    while True:
        event = json.loads(await ws.recv())
        seen.append(event)
        assert event["type"] != "error", event
        if event["type"] == kind:
            return


async def test_a_websockets_client_streams_and_gets_words_then_the_final(
    stack: WhispUp, spoken: tuple[str, npt.NDArray[np.float32]]
) -> None:
    text, samples = spoken
    url = stack.url.replace("http://", "ws://") + "/v1/realtime?intent=transcription"
    seen: list[dict[str, Any]] = []
    async with connect(url, additional_headers={"Authorization": "Bearer sk-local"}) as ws:
        await receive_until(ws, "session.created", seen)
        await ws.send(json.dumps({"type": "session.update", "session": {
            "type": "transcription", "audio": {"input": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "transcription": {"model": "gpt-4o-transcribe", "language": "en"},
                "turn_detection": None}}}}))  # fmt: skip
        await receive_until(ws, "session.updated", seen)
        reader = asyncio.create_task(receive_until(ws, "input_audio_buffer.committed", seen))
        for piece in chunks(pcm16_at(samples, 24_000), 24_000):  # at the pace it was spoken
            await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": piece}))
            await asyncio.sleep(CHUNK_S)
        deltas_while_held = [e for e in seen if e["type"].endswith("transcription.delta")]
        released = time.perf_counter()
        await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
        await reader
        await receive_until(ws, "conversation.item.input_audio_transcription.completed", seen)
        final_s = time.perf_counter() - released
    completed = seen[-1]
    item_id = completed["item_id"]
    committed = next(e for e in seen if e["type"] == "input_audio_buffer.committed")
    assert committed["item_id"] == item_id
    print(f"release -> completed {final_s * 1000:.0f} ms; {len(deltas_while_held)} deltas held")
    assert deltas_while_held, "no words while the key was held"
    assert all(e["item_id"] == item_id for e in deltas_while_held)
    # The settled words are the start of what was said (the final, decoded over the whole
    # utterance, may still word it differently: it is the authoritative text).
    streamed = "".join(e["delta"] for e in seen if e["type"].endswith("transcription.delta"))
    heard = streamed.split()
    assert word_error_rate(" ".join(text.split()[: len(heard)]), streamed) <= 0.35, streamed
    assert word_error_rate(text, completed["transcript"]) <= MAX_WER
    assert completed["usage"]["seconds"] == pytest.approx(len(samples) / 16_000, abs=0.3)
    async with httpx.AsyncClient(base_url=stack.url) as client:
        stored = (await client.get(f"/api/transcripts/{item_id}")).json()
        history = (await client.get("/api/transcripts")).json()
    assert stored["status"] == "done"
    assert stored["text"] == completed["transcript"]
    ids = [t["recording_id"] for t in history["items"]]
    assert ids.count(item_id) == 1


async def test_the_openai_sdk_realtime_client_transcribes(
    stack: WhispUp, spoken: tuple[str, npt.NDArray[np.float32]]
) -> None:
    text, samples = spoken
    client = AsyncOpenAI(base_url=f"{stack.url}/v1", api_key="sk-local", max_retries=0)
    kinds: list[str] = []
    async with client.realtime.connect(extra_query={"intent": "transcription"}) as conn:
        await conn.session.update(session={
            "type": "transcription",
            "audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000},
                                "turn_detection": None}},
        })  # fmt: skip
        for piece in chunks(pcm16_at(samples, 24_000), 24_000):
            await conn.input_audio_buffer.append(audio=piece)
        await conn.input_audio_buffer.commit()
        async with asyncio.timeout(60):
            async for event in conn:
                kinds.append(event.type)
                assert event.type != "error", event
                if event.type == "conversation.item.input_audio_transcription.completed":
                    transcript = event.transcript
                    break
    assert kinds[0] == "session.created"
    assert "input_audio_buffer.committed" in kinds
    assert word_error_rate(text, transcript) <= MAX_WER


async def test_a_cleared_buffer_leaves_nothing_behind(
    stack: WhispUp, spoken: tuple[str, npt.NDArray[np.float32]]
) -> None:
    _text, samples = spoken
    url = stack.url.replace("http://", "ws://") + "/v1/realtime?intent=transcription"
    async with httpx.AsyncClient(base_url=stack.url) as client:
        before = (await client.get("/api/transcripts")).json()["items"]
    seen: list[dict[str, Any]] = []
    async with connect(url) as ws:
        await receive_until(ws, "session.created", seen)
        for piece in chunks(pcm16_at(samples[:16_000], 24_000), 24_000):
            await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": piece}))
        await ws.send(json.dumps({"type": "input_audio_buffer.clear"}))
        await receive_until(ws, "input_audio_buffer.cleared", seen)
    await asyncio.sleep(1.0)
    async with httpx.AsyncClient(base_url=stack.url) as client:
        after = (await client.get("/api/transcripts")).json()["items"]
    assert len(after) == len(before)
