"""`DELETE /recordings?before=…` (`whisp_shared.user_data`): one user's audio goes (before a
time, or all of it with their live recordings on Redis), never another user's; a bad time is
a 422. Against the session's real Redis and a real data folder; the clock is the metadata's
own `created_at`, moved back in the test."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from redis.asyncio import Redis

from tests.audio.conftest import AudioServiceFactory
from tests.audio.test_live import ALICE, BOB, pcm16, send, start
from tests.support.speech import read_wav
from whisp_audio.live_sessions import session_key
from whisp_audio.storage import META_NAME
from whisp_shared.live_audio import live_audio_stream
from whisp_shared.user_data import AUDIO_PURGE_PATH, AudioPurged


async def upload(svc, wav: Path, headers: dict[str, str]) -> str:  # type: ignore[no-untyped-def]
    response = await svc.client.post(
        "/recordings", headers=headers, files={"file": ("clip.wav", wav.read_bytes())}
    )
    assert response.status_code == 201, response.text
    return str(response.json()["recording_id"])


def folder(data_dir: Path, recording_id: str) -> Path:
    return data_dir / recording_id[:2] / recording_id


def age(data_dir: Path, recording_id: str, days: float) -> int:
    """Move the recording's creation `days` back; returns its audio bytes on disk."""
    meta_path = folder(data_dir, recording_id) / META_NAME
    meta = json.loads(meta_path.read_text())
    meta["created_at"] = (datetime.now(UTC) - timedelta(days=days)).isoformat()
    meta_path.write_text(json.dumps(meta))
    return sum(p.stat().st_size for p in folder(data_dir, recording_id).iterdir()) - len(
        meta_path.read_bytes()
    )


async def purge(svc, headers: dict[str, str], **params: str) -> AudioPurged:  # type: ignore[no-untyped-def]
    response = await svc.client.delete(AUDIO_PURGE_PATH, headers=headers, params=params)
    assert response.status_code == 200, response.text
    return AudioPurged.model_validate(response.json())


async def test_before_removes_only_my_older_audio(
    audio_service: AudioServiceFactory, data_dir: Path, speech
) -> None:
    wav = speech["walk-the-dog"][1]
    async with audio_service() as svc:
        old, recent = await upload(svc, wav, ALICE), await upload(svc, wav, ALICE)
        bobs_old = await upload(svc, wav, BOB)
        old_bytes = age(data_dir, old, days=10)
        age(data_dir, bobs_old, days=10)
        cutoff = (datetime.now(UTC) - timedelta(days=5)).isoformat()

        purged = await purge(svc, ALICE, before=cutoff)

        assert purged == AudioPurged(deleted=1, freed_bytes=old_bytes)
        assert not folder(data_dir, old).exists()
        assert (folder(data_dir, recent) / "audio.wav").is_file()
        assert (folder(data_dir, bobs_old) / "audio.wav").is_file()
        gone = await svc.client.get(f"/audio/{old}", headers=ALICE)
        assert (gone.status_code, gone.json()["code"]) == (404, "not_found")
        assert (await svc.client.get(f"/audio/{bobs_old}", headers=BOB)).status_code == 200


async def test_without_before_everything_of_mine_goes_live_recordings_too(
    audio_service: AudioServiceFactory, redis: Redis, data_dir: Path, speech
) -> None:
    wav = speech["walk-the-dog"][1]
    samples, _ = read_wav(wav)
    pcm = pcm16(samples[:8_000].astype(np.float32))
    async with audio_service() as svc:
        mine = [await upload(svc, wav, ALICE), await upload(svc, wav, ALICE)]
        theirs = await upload(svc, wav, BOB)
        committed = await start(svc.client, sample_rate=16_000)
        await send(svc.client, committed, pcm, 4_000)
        assert (await svc.client.post(f"/live/{committed}/commit", headers=ALICE)).is_success
        still_open = await start(svc.client, sample_rate=16_000)
        await send(svc.client, still_open, pcm, 4_000)
        bobs_live = await start(svc.client, headers=BOB, sample_rate=16_000)
        await send(svc.client, bobs_live, pcm, 4_000, headers=BOB)

        purged = await purge(svc, ALICE)

        assert purged.deleted == 3 and purged.freed_bytes > 0  # two uploads, one live WAV
        left = {p.parent.name for p in data_dir.rglob(META_NAME)}
        assert left == {theirs}
        for rid in (committed, still_open):
            assert not await redis.exists(session_key(rid), live_audio_stream(rid))
        assert await redis.exists(session_key(bobs_live)) and await redis.exists(
            live_audio_stream(bobs_live)
        )
        gone = await svc.client.post(f"/live/{still_open}/audio", content=pcm, headers={
            **ALICE, "Content-Type": "application/octet-stream"})  # fmt: skip
        assert gone.status_code == 404
        for rid in mine:
            assert (await svc.client.get(f"/audio/{rid}", headers=ALICE)).status_code == 404
        assert (await svc.client.get(f"/audio/{theirs}", headers=BOB)).status_code == 200

        assert await purge(svc, ALICE) == AudioPurged(deleted=0, freed_bytes=0)  # idempotent


async def test_a_bad_before_is_a_422_and_removes_nothing(
    audio_service: AudioServiceFactory, data_dir: Path, speech
) -> None:
    async with audio_service() as svc:
        rid = await upload(svc, speech["walk-the-dog"][1], ALICE)
        for bad in ("yesterday", "2026-13-01T00:00:00Z", "2020-01-01T00:00:00", ""):
            response = await svc.client.delete(
                AUDIO_PURGE_PATH, headers=ALICE, params={"before": bad}
            )
            assert response.status_code == 422, (bad, response.text)
            body = response.json()
            assert body["code"] == "invalid_request" and "before" in body["message"], body
        assert (folder(data_dir, rid) / "audio.wav").is_file()
