"""A worker configured to unload its model when idle frees it, and loads it again for the next
clip without losing that clip."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from redis.asyncio import Redis

from tests.integration.bus_helpers import stream_events, wait_for
from tests.support.speech import Utterance, word_error_rate
from whisp_shared.events import RecordingCompleted, TranscriptReady
from whisp_shared.streams import RECORDINGS, TRANSCRIPTS


async def test_model_unloads_when_idle_and_reloads_for_the_next_clip(
    running_worker, redis: Redis, audio_dir: Path, corpus: list[tuple[Utterance, Path]]
) -> None:
    utt, wav = corpus[0]
    (audio_dir / wav.name).write_bytes(wav.read_bytes())
    async with running_worker(idle_unload_s=0.4) as app:
        engine = app.state.transcriber.engine
        assert engine.loaded
        deadline = time.monotonic() + 10
        while engine.loaded:
            assert time.monotonic() < deadline, "model still loaded after the idle timeout"
            await asyncio.sleep(0.05)

        await app.state.bus.publish(
            RECORDINGS,
            RecordingCompleted(
                recording_id="after-idle", user_id="u", audio_uri=(audio_dir / wav.name).as_uri()
            ),
        )

        async def arrived() -> bool:
            return await redis.xlen(TRANSCRIPTS) >= 1

        await wait_for(arrived, timeout=30)
        [event] = await stream_events(redis, TRANSCRIPTS)
        assert isinstance(event, TranscriptReady)
        assert word_error_rate(utt.text, event.text) <= 0.25  # the model came back for it
