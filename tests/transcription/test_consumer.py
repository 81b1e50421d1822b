"""What a transcript inherits from its recording: identity, trace and the agent route, so
the agent service answers the right user in the right session."""

from __future__ import annotations

from pathlib import Path

from redis.asyncio import Redis

from tests.integration.bus_helpers import stream_events, wait_for
from tests.support.speech import Utterance, word_error_rate
from tests.transcription.conftest import WorkerFactory
from whisp_shared.events import RecordingCompleted, TranscriptReady
from whisp_shared.streams import RECORDINGS, TRANSCRIPTS


async def test_transcript_carries_the_recordings_identity_and_agent_route(
    running_worker: WorkerFactory,
    redis: Redis,
    audio_dir: Path,
    corpus: list[tuple[Utterance, Path]],
) -> None:
    utt, wav = corpus[0]
    (audio_dir / wav.name).write_bytes(wav.read_bytes())
    recording = RecordingCompleted(
        recording_id="routed",
        user_id="dana",
        audio_uri=(audio_dir / wav.name).as_uri(),
        agent_id="notes",
        pipeline="summarise",
        session_id="s-42",
        language="en",
    )
    async with running_worker() as app:
        await app.state.bus.publish(RECORDINGS, recording)

        async def arrived() -> bool:
            return await redis.xlen(TRANSCRIPTS) >= 1

        await wait_for(arrived, timeout=30)
    [event] = await stream_events(redis, TRANSCRIPTS)
    assert isinstance(event, TranscriptReady)
    assert not event.live
    assert (event.recording_id, event.user_id, event.trace_id) == (
        "routed",
        "dana",
        recording.trace_id,
    )
    assert event.route() == recording.route()
    assert (event.agent_id, event.pipeline, event.session_id) == ("notes", "summarise", "s-42")
    assert word_error_rate(utt.text, event.text) <= 0.25
