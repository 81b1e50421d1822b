"""`keep_audio: false`: the audio service deletes a recording's audio once its transcript is
on `whisp:transcripts` (its own `audio` group), for uploads, device recordings and live
commits alike, and keeps it otherwise (kept recordings, failed transcriptions), against the
session's real Redis and a real data folder."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
from pydantic import TypeAdapter
from redis.asyncio import Redis

from tests.audio.conftest import AudioServiceFactory
from tests.audio.test_live import ALICE, pcm16, send, start
from tests.integration.bus_helpers import failure_for, transcript_for, wait_for
from tests.support.speech import read_wav
from whisp_audio.discard import discard_consumer
from whisp_audio.live_sessions import session_key
from whisp_audio.storage import META_NAME
from whisp_recorder import FileReplaySource
from whisp_shared.bus_group import ensure_group
from whisp_shared.codec import decode_fields, encode_entry
from whisp_shared.config import BusSettings
from whisp_shared.events import EventBase, FailureFields, RecordingCompleted
from whisp_shared.live_audio import live_audio_stream
from whisp_shared.streams import AUDIO_GROUP, AUDIO_KEPT, TRANSCRIPTS, dead_letter_stream
from whisp_shared.user_data import AudioKept


def files_of(data_dir: Path, recording_id: str) -> set[str]:
    """Every file anywhere under the data folder that belongs to the recording (its folder,
    staging, a folder being deleted)."""
    return {p.name for p in data_dir.rglob("*") if p.is_file() and recording_id in str(p)}


def audio_files_of(data_dir: Path, recording_id: str) -> set[str]:
    return files_of(data_dir, recording_id) - {META_NAME}


async def upload(svc, wav: Path, **form: str) -> str:  # type: ignore[no-untyped-def]
    response = await svc.client.post(
        "/recordings", headers=ALICE, data=form, files={"file": ("clip.wav", wav.read_bytes())}
    )
    assert response.status_code == 201, response.text
    return str(response.json()["recording_id"])


async def publish(redis: Redis, event: EventBase) -> None:
    await redis.xadd(TRANSCRIPTS, encode_entry(event))  # type: ignore[arg-type]


def ready_for(recording_id: str) -> EventBase:
    return transcript_for(
        RecordingCompleted(recording_id=recording_id, user_id="alice", audio_uri="http://x/a")
    )


async def handled(svc, redis: Redis, recording_id: str) -> None:  # type: ignore[no-untyped-def]
    """Wait until the audio service's group has finished this recording's transcript."""
    consumer = discard_consumer(svc.app.state.store, svc.app.state.live)
    await wait_for(lambda: _exists(redis, consumer.done_key(recording_id)))


async def _exists(redis: Redis, key: str) -> bool:
    return bool(await redis.exists(key))


async def test_an_upload_not_kept_loses_its_audio_once_transcribed(
    audio_service: AudioServiceFactory, redis: Redis, data_dir: Path, speech
) -> None:
    wav = speech["walk-the-dog"][1]
    async with audio_service() as svc:
        dropped = await upload(svc, wav, keep_audio="false", language="en")
        kept = await upload(svc, wav)
        assert audio_files_of(data_dir, dropped) == {"audio.wav", "original.wav"}
        assert (await svc.client.get(f"/audio/{dropped}", headers=ALICE)).status_code == 200

        await publish(redis, ready_for(kept))
        await publish(redis, ready_for(dropped))
        await handled(svc, redis, dropped)
        await handled(svc, redis, kept)

        assert audio_files_of(data_dir, dropped) == set()
        assert audio_files_of(data_dir, kept) == {"audio.wav", "original.wav"}
        for variant in ("wav", "original"):
            gone = await svc.client.get(f"/audio/{dropped}?variant={variant}", headers=ALICE)
            assert gone.status_code == 404, gone.text
            assert gone.json()["code"] == "audio_not_found"
        # Another user still cannot tell the recording exists.
        foreign = await svc.client.get(f"/audio/{dropped}", headers={"X-Whisp-User": "bob"})
        assert (foreign.status_code, foreign.json()["code"]) == (404, "not_found")
        served = await svc.client.get(f"/audio/{kept}", headers=ALICE)
        assert served.status_code == 200 and served.content == read_wav_bytes(data_dir, kept)

        # The metadata left says only that the audio is gone; a redelivery changes nothing.
        [meta] = [p for p in data_dir.rglob(META_NAME) if dropped in str(p)]
        assert '"audio_deleted_at"' in meta.read_text() and '"keep_audio": false' in (
            meta.read_text()
        )
        consumer = discard_consumer(svc.app.state.store, svc.app.state.live)
        await redis.delete(consumer.done_key(dropped))
        await publish(redis, ready_for(dropped))
        await handled(svc, redis, dropped)
        assert files_of(data_dir, dropped) == {META_NAME}


def read_wav_bytes(data_dir: Path, recording_id: str) -> bytes:
    [path] = [p for p in data_dir.rglob("audio.wav") if recording_id in str(p)]
    return path.read_bytes()


async def test_a_failed_transcription_keeps_the_audio_for_a_replay(
    audio_service: AudioServiceFactory, redis: Redis, data_dir: Path, speech
) -> None:
    wav = speech["walk-the-dog"][1]
    async with audio_service() as svc:
        rid = await upload(svc, wav, keep_audio="false")
        failed = failure_for(ready_for(rid), FailureFields(code="gave_up", message="worker died"))
        await publish(redis, failed)
        await publish(redis, ready_for("0" * 32))  # a marker that the failure was read
        await handled(svc, redis, "0" * 32)
        assert audio_files_of(data_dir, rid) == {"audio.wav", "original.wav"}
        assert (await svc.client.get(f"/audio/{rid}", headers=ALICE)).status_code == 200
        # The replay succeeds: now it goes.
        await publish(redis, ready_for(rid))
        await handled(svc, redis, rid)
        assert audio_files_of(data_dir, rid) == set()


async def test_a_device_recording_not_kept_loses_its_audio(
    audio_service: AudioServiceFactory, redis: Redis, data_dir: Path, tone_wav: Path
) -> None:
    def tone(_device: str | int | None) -> FileReplaySource:
        return FileReplaySource(tone_wav, after_end="silence")

    async with audio_service(source_factory=tone) as svc:
        started = await svc.client.post(
            "/devices/mic/recording", headers=ALICE, json={"keep_audio": False}
        )
        assert started.status_code == 201, started.text
        await asyncio.sleep(0.4)
        stopped = await svc.client.post("/devices/mic/recording/stop", headers=ALICE)
        assert stopped.status_code == 201, stopped.text
        rid = stopped.json()["recording_id"]
        assert audio_files_of(data_dir, rid) == {"audio.wav"}
        await publish(redis, ready_for(rid))
        await handled(svc, redis, rid)
        assert audio_files_of(data_dir, rid) == set()


async def test_a_live_recording_not_kept_loses_its_wav_and_its_stream(
    audio_service: AudioServiceFactory, redis: Redis, data_dir: Path, speech
) -> None:
    samples, _ = read_wav(speech["late-for-dinner"][1])
    pcm = pcm16(samples[:16_000].astype(np.float32))
    async with audio_service() as svc:
        rids = {}
        for keep in (False, True):
            rid = await start(svc.client, sample_rate=16_000, keep_audio=keep)
            await send(svc.client, rid, pcm, 8_000)
            committed = await svc.client.post(f"/live/{rid}/commit", headers=ALICE)
            assert committed.status_code == 200, committed.text
            rids[keep] = rid
            assert audio_files_of(data_dir, rid) == {"audio.wav"}
            assert await redis.exists(live_audio_stream(rid))
        for rid in rids.values():
            await publish(redis, ready_for(rid))
            await handled(svc, redis, rid)

        assert audio_files_of(data_dir, rids[False]) == set()
        assert not await redis.exists(live_audio_stream(rids[False]))
        left = await redis.hmget(session_key(rids[False]), ["tail", "pending", "state"])
        assert left == [b"", b"", b"committed"]  # no samples left in the session's hash
        gone = await svc.client.get(f"/audio/{rids[False]}", headers=ALICE)
        assert (gone.status_code, gone.json()["code"]) == (404, "audio_not_found")
        # A repeated commit still answers as before.
        again = await svc.client.post(f"/live/{rids[False]}/commit", headers=ALICE)
        assert again.status_code == 200, again.text

        assert audio_files_of(data_dir, rids[True]) == {"audio.wav"}
        assert await redis.exists(live_audio_stream(rids[True]))


async def test_giving_up_says_so_for_ops_and_copies_no_text(
    audio_service: AudioServiceFactory, redis: Redis, bus_settings: BusSettings
) -> None:
    """A transcript entry delivered past the budget (a peer that took it kept dying) is
    dead-lettered, and an `audio.kept` notice names the recording, with ids only."""
    event = ready_for("1" * 32)
    await ensure_group(redis, TRANSCRIPTS, AUDIO_GROUP)
    await publish(redis, event)
    await redis.xreadgroup(AUDIO_GROUP, "dead-peer", {TRANSCRIPTS: ">"})
    for _ in range(bus_settings.max_deliveries - 1):  # read again: more deliveries
        await redis.xreadgroup(AUDIO_GROUP, "dead-peer", {TRANSCRIPTS: "0"})
    async with audio_service():
        await wait_for(lambda: _exists(redis, AUDIO_KEPT))
        [(_id, fields)] = await redis.xrange(AUDIO_KEPT)
        notice = decode_fields(fields, TypeAdapter(AudioKept))
        assert notice.recording_id == event.recording_id and notice.code == "gave_up"
        assert event.text not in fields[b"data"].decode()
        [(_id, dead)] = await redis.xrange(dead_letter_stream(TRANSCRIPTS))
        assert dead[b"group"] == AUDIO_GROUP.encode()
