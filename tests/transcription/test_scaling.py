"""Two worker processes share the work; SIGKILL one mid-clip and nothing is lost or doubled."""

from __future__ import annotations

import asyncio
import shutil
import signal
from collections import Counter
from pathlib import Path

import pytest
from redis.asyncio import Redis

from tests.integration.bus_helpers import stream_events, wait_for
from tests.support.speech import Utterance, word_error_rate
from tests.transcription.workers import start_workers
from whisp_cli.redis_server import RedisServer
from whisp_shared.bus import EventBus
from whisp_shared.config import BusSettings
from whisp_shared.events import RecordingCompleted, TranscriptReady
from whisp_shared.streams import RECORDINGS, TRANSCRIBERS_GROUP, TRANSCRIPTS

pytestmark = pytest.mark.e2e


async def test_sigkill_one_of_two_workers_mid_clip_every_recording_once(
    redis_server: RedisServer,
    redis: Redis,
    corpus: list[tuple[Utterance, Path]],
    tmp_path: Path,
) -> None:
    audio_dir = tmp_path / "audio"
    audio_dir.mkdir()
    long_clips = sorted(corpus, key=lambda c: -c[1].stat().st_size)[:6]
    for _utt, wav in long_clips:
        shutil.copy(wav, audio_dir / wav.name)
    workers = start_workers(
        2, redis_server.url, audio_dir, tmp_path, WHISP_BUS__CLAIM_IDLE_MS="1500"
    )
    bus = EventBus(BusSettings(redis_url=redis_server.url))
    await bus.start()
    try:
        expected = {}
        for n, (utt, wav) in enumerate(long_clips * 2):
            rid = f"rec-{n}"
            expected[rid] = utt.text
            await bus.publish(
                RECORDINGS,
                RecordingCompleted(
                    recording_id=rid, user_id="dana", audio_uri=(audio_dir / wav.name).as_uri()
                ),
            )

        victim = workers[0]

        async def victim_is_mid_clip() -> bool:
            pending = await redis.xpending_range(
                RECORDINGS, TRANSCRIBERS_GROUP, min="-", max="+", count=100
            )
            return any(p["consumer"].decode() == victim.consumer_name for p in pending)

        await wait_for(victim_is_mid_clip, timeout=30, interval=0.02)
        await asyncio.sleep(0.2)  # well inside a 10-27 s clip's transcription
        victim.process.send_signal(signal.SIGKILL)
        victim.process.wait()

        async def all_done() -> bool:
            return await redis.xlen(TRANSCRIPTS) >= len(expected)

        await wait_for(all_done, timeout=120, interval=0.2)
        await asyncio.sleep(2.0)  # any duplicate would have landed by now

        events = await stream_events(redis, TRANSCRIPTS)
        assert all(isinstance(e, TranscriptReady) for e in events), events
        counts = Counter(e.recording_id for e in events)
        assert counts == Counter(dict.fromkeys(expected, 1))
        for event in events:
            assert isinstance(event, TranscriptReady)
            assert word_error_rate(expected[event.recording_id], event.text) <= 0.6
        info = await redis.xpending(RECORDINGS, TRANSCRIBERS_GROUP)
        assert info["pending"] == 0
        survivor_log = workers[1].log.read_text()
        assert '"transcribed"' in survivor_log
    finally:
        await bus.stop()
        for worker in workers:
            worker.stop()
