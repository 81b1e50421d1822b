"""Live recordings (`POST /live`, `/live/{id}/audio|commit|cancel`): PCM chunks at the
client's rate in, 16-kHz chunks on the recording's stream in order, the WAV stored at commit
and served like an upload's; isolation, limits and ends, against the session's real Redis.

Also the resampler (`whisp_audio.resample`) on its own: chunked conversion is bit-exact
with converting the whole recording, so chunk boundaries cannot click."""

from __future__ import annotations

import io
import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from tests.audio.conftest import BASE_URL, AudioServiceFactory
from tests.audio.signals import correlation
from tests.integration.bus_helpers import stream_events
from tests.support.speech import Utterance, read_wav
from whisp_audio.resample import Resampler, ResampleState
from whisp_recorder.convert import resample
from whisp_shared.events import LiveRecordingStarted
from whisp_shared.live_audio import (
    LIVE_AUDIO_TTL_S,
    LiveEnd,
    live_audio_stream,
    read_entry,
)
from whisp_shared.streams import LIVE_RECORDINGS, PRIORITY_RECORDINGS, RECORDINGS

ALICE = {"X-Whisp-User": "alice"}
BOB = {"X-Whisp-User": "bob"}
OCTETS = {"Content-Type": "application/octet-stream"}


def pcm16(samples: npt.NDArray[np.floating]) -> bytes:
    return bytes(np.clip(np.rint(samples * 32767), -32768, 32767).astype("<i2").tobytes())


def speech_at(rate: int, wav: Path) -> tuple[npt.NDArray[np.float32], bytes]:
    """The clip at 16 kHz, and as PCM16 at `rate` (made with swresample, not our code)."""
    samples, _ = read_wav(wav)
    return samples, pcm16(resample(samples, 16_000, rate))


async def start(client, headers=ALICE, **body) -> str:  # type: ignore[no-untyped-def]
    response = await client.post("/live", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return str(response.json()["recording_id"])


async def send(client, rid: str, pcm: bytes, chunk: int, headers=ALICE) -> None:  # type: ignore[no-untyped-def]
    for start_at in range(0, len(pcm), chunk):
        response = await client.post(
            f"/live/{rid}/audio", content=pcm[start_at : start_at + chunk],
            headers={**headers, **OCTETS},
        )  # fmt: skip
        assert response.status_code == 204, response.text


async def entries(redis: Redis, rid: str) -> tuple[bytes, list[LiveEnd]]:
    """The stream's audio (PCM16 16 kHz, joined) and its end entries."""
    pcm, ends = [], []
    for _id, fields in await redis.xrange(live_audio_stream(rid)):
        item = read_entry(fields)
        if isinstance(item, LiveEnd):
            ends.append(item)
        else:
            pcm.append(fields[b"pcm"])
    return b"".join(pcm), ends


def wav_pcm(data: bytes) -> tuple[int, bytes]:
    with wave.open(io.BytesIO(data)) as wav:
        return wav.getframerate(), wav.readframes(wav.getnframes())


def sessions(event: str) -> float:
    return REGISTRY.get_sample_value("whisp_audio_live_sessions_total", {"event": event}) or 0.0


# ---------------------------------------------------------------- the resampler


@pytest.mark.parametrize("rate", [8_000, 22_050, 24_000, 44_100, 48_000])
def test_resampling_in_chunks_is_exact_and_clean(rate: int) -> None:
    t = np.arange(rate * 2) / rate
    tone = pcm16(0.5 * np.sin(2 * np.pi * 1_000 * t))
    resampler = Resampler(rate, 16_000)
    whole, state = resampler.feed(ResampleState(), tone)
    whole += resampler.flush(state)
    rng = np.random.default_rng(rate)
    chunked, state, at = b"", ResampleState(), 0
    while at < len(tone):
        size = 2 * int(rng.integers(1, 2_400))  # 1 sample .. 100 ms at 24 kHz
        out, state = resampler.feed(state, tone[at : at + size])
        chunked, at = chunked + out, at + size
    chunked += resampler.flush(state)
    assert chunked == whole  # bit-exact: a chunk boundary changes nothing
    out = np.frombuffer(chunked, "<i2") / 32767
    assert len(out) == 32_000
    ideal = 0.5 * np.sin(2 * np.pi * 1_000 * np.arange(len(out)) / 16_000)
    inner = slice(100, -100)  # the edges start and end from silence
    noise = np.mean((out[inner] - ideal[inner]) ** 2)
    assert 10 * np.log10(np.mean(ideal[inner] ** 2) / noise) > 70  # dB


# ---------------------------------------------------------------- the happy path


async def test_chunks_stream_in_order_and_the_commit_stores_the_wav(
    audio_service: AudioServiceFactory, redis: Redis, speech: dict[str, tuple[Utterance, Path]]
) -> None:
    _utt, wav = speech["late-for-dinner"]
    reference, pcm24 = speech_at(24_000, wav)
    started, committed = sessions("started"), sessions("committed")
    async with audio_service() as svc:
        response = await svc.client.post(
            "/live",
            json={"sample_rate": 24_000, "language": "en", "agent_id": "scribe", "prompt": ""},
            headers=ALICE,
        )
        assert response.status_code == 201, response.text
        body = response.json()
        rid = body["recording_id"]
        assert body == {"recording_id": rid, "sample_rate": 24_000, "max_duration_s": 600.0}
        [event] = await stream_events(redis, LIVE_RECORDINGS)
        assert isinstance(event, LiveRecordingStarted)
        assert (event.recording_id, event.user_id, event.language) == (rid, "alice", "en")
        assert (event.agent_id, event.prompt, event.max_duration_s) == ("scribe", None, 600.0)

        await send(svc.client, rid, pcm24, chunk=4_800)  # 100 ms
        chunks = -(-len(pcm24) // 4_800)
        assert await redis.xlen(live_audio_stream(rid)) == chunks  # one entry per chunk
        streamed, ends = await entries(redis, rid)
        assert ends == []
        corr, lag = correlation(np.frombuffer(streamed, "<i2") / 32768, reference)
        assert corr > 0.99
        assert abs(lag) <= 2

        done = await svc.client.post(f"/live/{rid}/commit", headers=ALICE)
        assert done.status_code == 200, done.text
        duration = len(reference) / 16_000
        assert done.json() == {"recording_id": rid, "duration_s": pytest.approx(duration, abs=1e-3)}
        streamed, ends = await entries(redis, rid)
        assert ends == [LiveEnd("commit", f"{BASE_URL}/audio/{rid}", done.json()["duration_s"])]
        assert len(streamed) // 2 == round(duration * 16_000)
        assert 0 < await redis.ttl(live_audio_stream(rid)) <= LIVE_AUDIO_TTL_S

        served = await svc.client.get(f"/audio/{rid}", headers=ALICE)
        assert served.status_code == 200
        assert wav_pcm(served.content) == (16_000, streamed)  # the stream, byte for byte
        info = (await svc.client.get(f"/recordings/{rid}", headers=ALICE)).json()
        assert (info["source"], info["user_id"]) == ("live", "alice")
        again = await svc.client.post(f"/live/{rid}/commit", headers=ALICE)
        assert again.json() == done.json()  # a retried commit answers the same
    for stream in (RECORDINGS, PRIORITY_RECORDINGS):  # the live worker transcribes; no twice
        assert await redis.xlen(stream) == 0
    assert (sessions("started") - started, sessions("committed") - committed) == (1, 1)


async def test_any_replica_takes_the_next_chunk(
    audio_service: AudioServiceFactory, redis: Redis, speech: dict[str, tuple[Utterance, Path]]
) -> None:
    _utt, wav = speech["late-for-dinner"]
    _reference, pcm48 = speech_at(48_000, wav)
    resampler = Resampler(48_000, 16_000)
    whole, state = resampler.feed(ResampleState(), pcm48)
    whole += resampler.flush(state)
    async with audio_service() as one, audio_service() as two:
        rid = await start(one.client, sample_rate=48_000)
        for n, at in enumerate(range(0, len(pcm48), 1_918)):  # odd-sized 20 ms pieces
            replica = (one, two)[n % 2]
            await send(replica.client, rid, pcm48[at : at + 1_918], chunk=1_918)
        done = await two.client.post(f"/live/{rid}/commit", headers=ALICE)
        assert done.status_code == 200
    streamed, ends = await entries(redis, rid)
    assert streamed == whole  # as if one process had converted the whole recording
    assert [e.kind for e in ends] == ["commit"]


# ---------------------------------------------------------------- isolation and refusals


async def test_another_users_recording_is_not_found(audio_service: AudioServiceFactory) -> None:
    async with audio_service() as svc:
        rid = await start(svc.client, sample_rate=16_000)
        unknown = await svc.client.post(f"/live/{'0' * 32}/commit", headers=BOB)
        assert unknown.status_code == 404
        for url, content in (
            (f"/live/{rid}/audio", b"\0\0" * 160),
            (f"/live/{rid}/commit", None),
            (f"/live/{rid}/cancel", None),
            ("/live/not-an-id/audio", b"\0\0"),
        ):
            response = await svc.client.post(url, content=content, headers={**BOB, **OCTETS})
            assert response.status_code == 404, url
            assert response.json() == unknown.json()  # nothing tells it exists
        await send(svc.client, rid, b"\1\0" * 1_600, chunk=3_200)  # alice's is untouched
        done = await svc.client.post(f"/live/{rid}/commit", headers=ALICE)
        assert done.json()["duration_s"] == 0.1


async def test_bad_chunks_are_refused_and_change_nothing(
    audio_service: AudioServiceFactory, redis: Redis
) -> None:
    async with audio_service(live_max_chunk_bytes=4_800) as svc:
        for body in ({"sample_rate": 96_000}, {"sample_rate": 16_000, "langauge": "en"}):
            refused = await svc.client.post("/live", json=body, headers=ALICE)
            assert (refused.status_code, refused.json()["code"]) == (422, "invalid_request")
        rid = await start(svc.client, sample_rate=24_000)
        url = f"/live/{rid}/audio"
        for content, headers, status, code in (
            (b"\0" * 4_802, OCTETS, 413, "chunk_too_large"),
            (b"\0" * 481, OCTETS, 422, "bad_audio_chunk"),
            (b"\0" * 480, {"Content-Type": "text/plain"}, 415, "unsupported_media_type"),
        ):
            response = await svc.client.post(url, content=content, headers={**ALICE, **headers})
            assert (response.status_code, response.json()["code"]) == (status, code)

        async def chunked():  # type: ignore[no-untyped-def]
            for _ in range(3):
                yield b"\0" * 2_000  # no Content-Length: refused while it streams

        streamed = await svc.client.post(url, content=chunked(), headers={**ALICE, **OCTETS})
        assert (streamed.status_code, streamed.json()["code"]) == (413, "chunk_too_large")
        assert await redis.exists(live_audio_stream(rid)) == 0
        await send(svc.client, rid, b"\0\0" * 2_400, chunk=4_800)  # still open and fine
        assert await redis.xlen(live_audio_stream(rid)) == 1


async def test_the_service_token_is_required_when_configured(
    audio_service: AudioServiceFactory,
) -> None:
    async with audio_service(service_token="s3cret-token") as svc:
        refused = await svc.client.post("/live", json={}, headers=ALICE)
        assert (refused.status_code, refused.json()["code"]) == (401, "unauthorized")
        authorised = {**ALICE, "Authorization": "Bearer s3cret-token"}
        rid = await start(svc.client, headers=authorised)
        assert (await svc.client.post(f"/live/{rid}/cancel")).status_code == 401


# ---------------------------------------------------------------- how recordings end


async def test_audio_past_the_maximum_length_commits_it_there(
    audio_service: AudioServiceFactory, redis: Redis
) -> None:
    at_max = sessions("max_duration")
    tone = pcm16(0.3 * np.sin(np.arange(24_000 * 2) * 0.07))  # 2 s at 24 kHz
    async with audio_service(max_duration_s=1.0) as svc:
        rid = await start(svc.client, sample_rate=24_000)
        await send(svc.client, rid, tone[: 2 * 14_400], chunk=2 * 14_400)  # 0.6 s: fine
        past = await svc.client.post(
            f"/live/{rid}/audio", content=tone[2 * 14_400 :], headers={**ALICE, **OCTETS}
        )
        assert (past.status_code, past.json()["code"]) == (409, "max_duration_reached")
        assert "1 s" in past.json()["message"]
        streamed, ends = await entries(redis, rid)
        assert len(streamed) == 2 * 16_000  # exactly up to the limit
        assert ends == [LiveEnd("commit", f"{BASE_URL}/audio/{rid}", 1.0)]
        again = await svc.client.post(
            f"/live/{rid}/audio", content=b"\0\0" * 100, headers={**ALICE, **OCTETS}
        )
        assert again.json()["code"] == "max_duration_reached"
        done = await svc.client.post(f"/live/{rid}/commit", headers=ALICE)
        assert done.json() == {"recording_id": rid, "duration_s": 1.0}
        assert wav_pcm((await svc.client.get(f"/audio/{rid}")).content)[1] == streamed
    assert sessions("max_duration") - at_max == 1


async def test_cancel_keeps_nothing_and_ends_the_recording(
    audio_service: AudioServiceFactory, redis: Redis
) -> None:
    cancelled = sessions("cancelled")
    async with audio_service() as svc:
        rid = await start(svc.client, sample_rate=16_000)
        await send(svc.client, rid, b"\1\0" * 3_200, chunk=3_200)
        assert (await svc.client.post(f"/live/{rid}/cancel", headers=ALICE)).status_code == 204
        _pcm, ends = await entries(redis, rid)
        assert ends == [LiveEnd("cancel", "", 0.0)]
        assert 0 < await redis.ttl(live_audio_stream(rid)) <= LIVE_AUDIO_TTL_S
        late = await svc.client.post(
            f"/live/{rid}/audio", content=b"\0\0", headers={**ALICE, **OCTETS}
        )
        assert (late.status_code, late.json()["code"]) == (409, "recording_ended")
        commit = await svc.client.post(f"/live/{rid}/commit", headers=ALICE)
        assert (commit.status_code, commit.json()["code"]) == (409, "recording_ended")
        assert (await svc.client.post(f"/live/{rid}/cancel", headers=ALICE)).status_code == 204
        assert (await svc.client.get(f"/recordings/{rid}", headers=ALICE)).status_code == 404
        _pcm, ends = await entries(redis, rid)
        assert len(ends) == 1
    assert sessions("cancelled") - cancelled == 1


async def test_an_empty_recording_may_be_committed(
    audio_service: AudioServiceFactory, redis: Redis
) -> None:
    async with audio_service() as svc:
        rid = await start(svc.client)
        done = await svc.client.post(f"/live/{rid}/commit", headers=ALICE)
        assert done.json() == {"recording_id": rid, "duration_s": 0.0}
        assert wav_pcm((await svc.client.get(f"/audio/{rid}")).content) == (16_000, b"")
        cancel = await svc.client.post(f"/live/{rid}/cancel", headers=ALICE)
        assert (cancel.status_code, cancel.json()["code"]) == (409, "recording_ended")
    _pcm, ends = await entries(redis, rid)
    assert [e.kind for e in ends] == ["commit"]
