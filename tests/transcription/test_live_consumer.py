"""Live workers: real speech streamed at real-time pace through the real audio service
(24 kHz PCM in, resampled to the recording's stream), partial text on `whisp:live` while
it plays, exactly one `TranscriptReady` at commit; cancel, abandonment and an engine that
cannot stream; and a worker *process* SIGKILLed mid-utterance, whose peer replays the
audio and writes the one transcript."""

from __future__ import annotations

import asyncio
import itertools
import signal
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from pydantic import SecretStr
from redis.asyncio import Redis

from tests.integration.bus_helpers import stream_events, wait_for
from tests.support.speech import Utterance, read_wav, word_error_rate
from tests.transcription.conftest import AudioClientFactory, WorkerFactory
from tests.transcription.workers import start_workers
from whisp_cli.redis_server import RedisServer
from whisp_recorder.convert import resample
from whisp_shared.bus import EventBus
from whisp_shared.codec import decode_fields
from whisp_shared.config import BusSettings
from whisp_shared.events import (
    Event,
    LiveRecordingStarted,
    TranscriptionFailed,
    TranscriptReady,
)
from whisp_shared.live_audio import chunk_fields, end_fields, live_audio_stream
from whisp_shared.streams import LIVE, LIVE_RECORDINGS, TRANSCRIBERS_GROUP, TRANSCRIPTS
from whisp_shared.views import CLIENT_EVENT_ADAPTER, TranscriptPartial
from whisp_transcription.app import create_app
from whisp_transcription.engines.base import Clip, TranscribeOptions
from whisp_transcription.engines.faster_whisper_engine import FasterWhisperEngine
from whisp_transcription.engines.openai_engine import OpenAIEngine
from whisp_transcription.settings import OpenAISettings, TranscriptionSettings

USER = {"X-Whisp-User": "dana"}
OCTETS = {**USER, "Content-Type": "application/octet-stream"}
STEP_S = 0.1  # 100-ms chunks


def pcm16(samples: npt.NDArray[np.floating]) -> bytes:
    return bytes(np.clip(np.rint(samples * 32767), -32768, 32767).astype("<i2").tobytes())


def utterance(corpus: list[tuple[Utterance, Path]], index: int = 2) -> tuple[str, np.ndarray]:
    """A corpus clip (index 2: 14 words, ~4.6 s) and 0.3 s more silence before release."""
    utt, wav = corpus[index]
    speech, _ = read_wav(wav)
    return utt.text, np.concatenate([speech, np.zeros(4_800, np.float32)])


async def paced(pieces: list[bytes], send) -> None:  # type: ignore[no-untyped-def]
    """Send piece n at n * 100 ms, as a microphone would."""
    began = time.monotonic()
    for n, piece in enumerate(pieces):
        await asyncio.sleep(max(0.0, began + n * STEP_S - time.monotonic()))
        await send(piece)
    await asyncio.sleep(max(0.0, began + len(pieces) * STEP_S - time.monotonic()))


def split(pcm: bytes, size: int) -> list[bytes]:
    return [pcm[at : at + size] for at in range(0, len(pcm), size)]


async def partials(redis: Redis, rid: str) -> list[tuple[int, TranscriptPartial]]:
    """The recording's partials on `whisp:live`, with the server time (ms) each was added."""
    found = []
    for entry_id, fields in await redis.xrange(LIVE):
        event = decode_fields(fields, CLIENT_EVENT_ADAPTER)
        if isinstance(event, TranscriptPartial) and event.recording_id == rid:
            found.append((int(entry_id.split(b"-")[0]), event))
    return found


async def results(redis: Redis, rid: str) -> list[Event]:
    return [e for e in await stream_events(redis, TRANSCRIPTS) if e.recording_id == rid]


async def live_settled(redis: Redis) -> bool:
    """Every live recording delivered and finished (nothing pending in the group)."""
    groups = await redis.xinfo_groups(LIVE_RECORDINGS)
    info = next(g for g in groups if g["name"] == TRANSCRIBERS_GROUP.encode())
    last = (await redis.xrevrange(LIVE_RECORDINGS, count=1))[0][0]
    return info["pending"] == 0 and info["last-delivered-id"] == last


def check_growing(found: list[tuple[int, TranscriptPartial]]) -> None:
    for (_t1, before), (_t2, after) in itertools.pairwise(found):
        assert after.sequence > before.sequence
        stable = before.text[: before.stable_chars]
        assert after.text.startswith(stable), (before, after)  # settled words never change
        assert after.stable_chars >= before.stable_chars


async def test_live_audio_gives_growing_partials_and_one_final(
    running_worker: WorkerFactory,
    audio_client: AudioClientFactory,
    redis: Redis,
    corpus: list[tuple[Utterance, Path]],
    tiny_engine: FasterWhisperEngine,
) -> None:
    text, audio = utterance(corpus)
    pcm24 = pcm16(resample(audio, 16_000, 24_000))
    async with running_worker() as _worker, audio_client() as client:
        opened = await client.post(
            "/live", json={"sample_rate": 24_000, "agent_id": "notes"}, headers=USER
        )
        rid = opened.json()["recording_id"]

        async def send(piece: bytes) -> None:
            answer = await client.post(f"/live/{rid}/audio", content=piece, headers=OCTETS)
            assert answer.status_code == 204, answer.text

        await paced(split(pcm24, 4_800), send)
        released_ms = time.time() * 1000
        released = time.monotonic()
        done = await client.post(f"/live/{rid}/commit", headers=USER)
        assert done.status_code == 200, done.text

        async def transcribed() -> bool:
            return bool(await results(redis, rid))

        await wait_for(transcribed, timeout=20, interval=0.005)
        latency = time.monotonic() - released
        await wait_for(lambda: live_settled(redis), timeout=5)
    [started] = await stream_events(redis, LIVE_RECORDINGS)
    assert isinstance(started, LiveRecordingStarted)
    [final] = await results(redis, rid)
    assert isinstance(final, TranscriptReady), final
    assert (final.user_id, final.trace_id, final.agent_id) == ("dana", started.trace_id, "notes")
    assert final.live  # queue estimates leave it out
    assert final.audio_duration_s == pytest.approx(len(audio) / 16_000, abs=0.01)
    batch = tiny_engine.transcribe_sync(Clip(audio, b"", "audio/pcm"), TranscribeOptions())
    assert word_error_rate(batch.text, final.text) <= 0.2
    assert word_error_rate(text, final.text) <= 0.2

    found = await partials(redis, rid)
    while_held = [p for t, p in found if t < released_ms]
    assert len(while_held) >= 3, found  # words on screen while the key is held
    check_growing(found)
    assert len(found[-1][1].text.split()) >= len(text.split()) // 2
    gaps = [b - a for (a, _), (b, _) in itertools.pairwise(found)]
    print(
        f"\nlive: {len(found)} partials, median gap {np.median(gaps):.0f} ms, first after "
        f"{found[0][1].sequence} ms of audio; commit -> TranscriptReady {latency * 1000:.0f} ms "
        f"(worker: {final.processing_s * 1000:.0f} ms)"
    )


async def test_a_cancelled_live_recording_gets_no_transcript(
    running_worker: WorkerFactory,
    audio_client: AudioClientFactory,
    redis: Redis,
    corpus: list[tuple[Utterance, Path]],
) -> None:
    _text, audio = utterance(corpus, 0)
    async with running_worker() as _worker, audio_client() as client:
        rid = (await client.post("/live", json={"sample_rate": 16_000}, headers=USER)).json()[
            "recording_id"
        ]
        for piece in split(pcm16(audio), 3_200):
            await client.post(f"/live/{rid}/audio", content=piece, headers=OCTETS)
        assert (await client.post(f"/live/{rid}/cancel", headers=USER)).status_code == 204
        await wait_for(lambda: live_settled(redis), timeout=10)
    assert await results(redis, rid) == []


async def test_an_empty_live_recording_gets_an_empty_transcript(
    running_worker: WorkerFactory, audio_client: AudioClientFactory, redis: Redis
) -> None:
    async with running_worker() as _worker, audio_client() as client:
        rid = (await client.post("/live", json={}, headers=USER)).json()["recording_id"]
        assert (await client.post(f"/live/{rid}/commit", headers=USER)).status_code == 200

        async def transcribed() -> bool:
            return bool(await results(redis, rid))

        await wait_for(transcribed, timeout=10)
    [final] = await results(redis, rid)
    assert isinstance(final, TranscriptReady)
    assert (final.is_empty, final.text, final.audio_duration_s) == (True, "", 0.0)


async def test_an_abandoned_live_recording_fails_with_a_clear_code(
    running_worker: WorkerFactory, redis: Redis
) -> None:
    async with running_worker(live_idle_timeout_s=0.5) as worker:
        event = LiveRecordingStarted(recording_id="abandoned", user_id="dana", max_duration_s=60)
        await redis.xadd(live_audio_stream("abandoned"), chunk_fields(b"\0\0" * 3_200))
        await worker.state.bus.publish(LIVE_RECORDINGS, event)

        async def failed() -> bool:
            return bool(await results(redis, "abandoned"))

        began = time.monotonic()
        await wait_for(failed, timeout=10)
        assert time.monotonic() - began < 3
    [outcome] = await results(redis, "abandoned")
    assert isinstance(outcome, TranscriptionFailed)
    assert (outcome.code, outcome.retryable) == ("live_audio_timeout", False)


async def test_an_engine_that_cannot_stream_fails_live_recordings_at_once(
    bus_settings: BusSettings, redis: Redis, tmp_path: Path
) -> None:
    engine = OpenAIEngine(OpenAISettings(base_url="http://127.0.0.1:9/v1"), SecretStr("sk-x"))
    settings = TranscriptionSettings(engine="openai", audio_dir=tmp_path)
    app = create_app(settings, EventBus(bus_settings), engine=engine)
    async with app.router.lifespan_context(app):
        event = LiveRecordingStarted(recording_id="no-stream", user_id="dana", max_duration_s=60)
        await app.state.bus.publish(LIVE_RECORDINGS, event)

        async def failed() -> bool:
            return bool(await results(redis, "no-stream"))

        await wait_for(failed, timeout=10)
    [outcome] = await results(redis, "no-stream")
    assert isinstance(outcome, TranscriptionFailed)
    assert outcome.code == "live_not_supported"


@pytest.mark.e2e
async def test_a_worker_killed_mid_utterance_costs_latency_not_the_transcript(
    redis_server: RedisServer,
    redis: Redis,
    corpus: list[tuple[Utterance, Path]],
    tmp_path: Path,
) -> None:
    text, audio = utterance(corpus)
    workers = start_workers(
        2, redis_server.url, tmp_path, tmp_path,
        WHISP_BUS__CLAIM_IDLE_MS="500", WHISP_BUS__READ_BLOCK_MS="100",
    )  # fmt: skip
    bus = EventBus(BusSettings(redis_url=redis_server.url))
    await bus.connect()
    try:
        event = LiveRecordingStarted(recording_id="survivor", user_id="dana", max_duration_s=60)
        stream = live_audio_stream(event.recording_id)
        await bus.publish(LIVE_RECORDINGS, event)
        pieces = split(pcm16(audio), 3_200)
        killed: dict[str, float] = {}
        owners = {w.consumer_name: w for w in workers}

        async def send(piece: bytes) -> None:
            await redis.xadd(stream, chunk_fields(piece))
            if not killed and len(await partials(redis, "survivor")) >= 2:
                [held] = await redis.xpending_range(
                    LIVE_RECORDINGS, TRANSCRIBERS_GROUP, min="-", max="+", count=1
                )
                victim = owners[held["consumer"].decode()]
                victim.process.send_signal(signal.SIGKILL)  # mid-utterance, partials shown
                victim.process.wait()
                killed["at_ms"] = time.time() * 1000

        await paced(pieces, send)
        assert killed, "the worker was never killed"
        released = time.monotonic()
        await redis.xadd(stream, end_fields("commit", "file:///nowhere.wav", len(audio) / 16e3))

        async def transcribed() -> bool:
            return bool(await results(redis, "survivor"))

        await wait_for(transcribed, timeout=30, interval=0.01)
        latency = time.monotonic() - released
        await asyncio.sleep(1.0)  # a duplicate would have landed by now
        [final] = await results(redis, "survivor")
        assert isinstance(final, TranscriptReady), final
        assert word_error_rate(text, final.text) <= 0.2
        found = await partials(redis, "survivor")
        after = [(t, p) for t, p in found if t > killed["at_ms"]]
        assert after, "the peer published no partials"
        check_growing(found)  # across the handover too: sequences keep counting up
        print(
            f"\nkill: peer's first partial {after[0][0] - killed['at_ms']:.0f} ms after the "
            f"SIGKILL; commit -> TranscriptReady {latency * 1000:.0f} ms"
        )
    finally:
        await bus.stop()
        for worker in workers:
            worker.stop()
