"""POST /recordings and the stored audio: every format in, the right bytes out, every bad
input refused with a clear JSON error and *nothing* published."""

from __future__ import annotations

import asyncio
import struct
import time
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from tests.audio.conftest import BASE_URL, AudioServiceFactory, published
from tests.audio.signals import correlation
from tests.integration.bus_helpers import wait_for
from tests.support.formats import FORMATS, encode
from tests.support.speech import duration_s, read_wav
from whisp_audio.app import create_app
from whisp_audio.settings import AudioSettings
from whisp_cli.redis_server import RedisServer
from whisp_shared.audio import decode_audio
from whisp_shared.bus import EventBus
from whisp_shared.config import BusSettings
from whisp_shared.streams import PRIORITY_RECORDINGS, RECORDINGS

ID_CHARS = set("0123456789abcdef")


def upload_files(data: bytes, name: str = "clip.bin", ctype: str = "application/octet-stream"):
    return {"file": (name, data, ctype)}


def wav_header(seconds: float, rate: int = 16_000, real_seconds: float = 0.5) -> bytes:
    """A WAV whose header claims `seconds` of 16-bit mono but holds only `real_seconds`."""
    data_size = int(seconds * rate * 2)
    samples = (np.sin(np.arange(int(real_seconds * rate)) * 0.1) * 8000).astype("<i2").tobytes()
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    return (
        b"RIFF"
        + struct.pack("<I", 36 + data_size)
        + b"WAVE"
        + b"fmt "
        + struct.pack("<I", 16)
        + fmt
        + b"data"
        + struct.pack("<I", data_size)
        + samples
    )


def stored_files(data_dir: Path) -> list[Path]:
    return [p for p in data_dir.rglob("*") if p.is_file()] if data_dir.exists() else []


# ---------------------------------------------------------------- accepted formats


@pytest.mark.parametrize("fmt", list(FORMATS))
async def test_every_format_is_stored_published_and_served(
    audio_service: AudioServiceFactory, redis: Redis, speech, tmp_path: Path, fmt: str
) -> None:
    _utterance, wav_path = speech["late-for-dinner"]
    encoded = encode(wav_path, fmt, tmp_path)
    original = encoded.read_bytes()
    reference, _ = read_wav(wav_path)
    async with audio_service() as svc:
        # A misleading name and declared type: the content decides.
        response = await svc.client.post(
            "/recordings",
            files=upload_files(original, "notes.txt", "text/plain"),
            data={
                "agent_id": "scribe",
                "pipeline": "notes",
                "session_id": "s-1",
                "language": "en",
                "word_timestamps": "true",
                "prompt": "Sarah, dinner",
            },
            headers={"X-Whisp-User": "alice"},
        )
        assert response.status_code == 201, response.text
        body = response.json()
        rid = body["recording_id"]
        assert len(rid) == 32 and set(rid) <= ID_CHARS
        assert body["audio_uri"] == f"{BASE_URL}/audio/{rid}"
        assert body["content_type"] == "audio/wav"
        assert body["duration_s"] == pytest.approx(duration_s(wav_path), abs=0.12)

        [event] = await published(redis)
        assert event.recording_id == rid and event.user_id == "alice"
        assert event.audio_uri == body["audio_uri"] and event.content_type == "audio/wav"
        assert event.duration_s == body["duration_s"]
        assert (event.agent_id, event.pipeline, event.session_id) == ("scribe", "notes", "s-1")
        assert (event.language, event.word_timestamps, event.prompt) == (
            "en",
            True,
            "Sarah, dinner",
        )

        # The URI serves the normalised WAV: 16 kHz mono 16-bit, the same sound.
        served = await svc.client.get(
            event.audio_uri.removeprefix(BASE_URL), headers={"X-Whisp-User": "alice"}
        )
        assert served.status_code == 200
        assert served.headers["content-type"] == "audio/wav"
        assert served.content[:4] == b"RIFF" and served.content[8:12] == b"WAVE"
        channels, rate, bits = struct.unpack_from("<HIxxxxxxH", served.content, 22)
        assert (channels, rate, bits) == (1, 16_000, 16)
        corr, _lag = correlation(decode_audio(served.content), reference)
        assert corr > 0.9, f"{fmt}: stored audio correlates {corr:.3f} with the source"

        # ...and the original, byte for byte, with its sniffed type.
        original_back = await svc.client.get(f"/audio/{rid}?variant=original")
        assert original_back.content == original
        assert original_back.headers["content-type"] == FORMATS[fmt].content_type


# ---------------------------------------------------------------- refusals


async def _refused(
    svc, redis: Redis, data_dir: Path, response: httpx.Response, status: int, code: str
):
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"code", "message", "retryable"}
    assert body["code"] == code
    assert body["retryable"] is False, "a bad upload stays bad: sending it again cannot help"
    assert len(body["message"]) > 10
    for stream in (RECORDINGS, PRIORITY_RECORDINGS):
        assert await redis.xlen(stream) == 0, "nothing may be published on an error"
    assert stored_files(data_dir) == [], "nothing may be kept on an error"
    return body


@pytest.mark.parametrize(
    ("case", "data", "name", "status", "code", "words"),
    [
        ("empty", b"", "a.wav", 422, "undecodable_audio", "empty"),
        (
            "corrupt-wav",
            b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(256)) * 8,
            "a.wav",
            422,
            "undecodable_audio",
            "cannot be decoded",
        ),
        ("text", b"hello, this is plainly not audio at all", "a.wav", 415,
         "unsupported_media_type", "audio/flac"),
        ("pdf", b"%PDF-1.4\n" + b"0" * 500, "talk.mp3", 415, "unsupported_media_type",
         "not its name"),
        ("truncated-ogg", b"OggS\x00\x02" + b"\x00" * 40, "a.ogg", 422, "undecodable_audio",
         "Ogg"),
        ("no-samples-wav", wav_header(0.0, real_seconds=0.0), "a.wav", 422,
         "undecodable_audio", "no audio"),
    ],
    ids=lambda v: v if isinstance(v, str) and v.islower() and " " not in v else None,
)  # fmt: skip
async def test_bad_files_are_refused_and_nothing_published(
    audio_service: AudioServiceFactory,
    redis: Redis,
    data_dir: Path,
    case: str,
    data: bytes,
    name: str,
    status: int,
    code: str,
    words: str,
) -> None:
    async with audio_service() as svc:
        response = await svc.client.post("/recordings", files=upload_files(data, name, "audio/wav"))
        body = await _refused(svc, redis, data_dir, response, status, code)
    assert words in body["message"], body


async def test_a_ten_hour_header_is_refused_without_decoding(
    audio_service: AudioServiceFactory, redis: Redis, data_dir: Path
) -> None:
    liar = wav_header(10 * 3600)
    assert len(liar) < 20_000  # half a second of real samples
    async with audio_service() as svc:
        tracemalloc.start()
        started = time.perf_counter()
        response = await svc.client.post("/recordings", files=upload_files(liar))
        elapsed = time.perf_counter() - started
        _current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        body = await _refused(svc, redis, data_dir, response, 413, "audio_too_long")
    print(f"\n10-hour header refused in {1000 * elapsed:.1f} ms, {peak / 1024:.0f} KiB traced")
    assert "10 h 0 min" in body["message"] and "10 min 0 s" in body["message"]
    assert elapsed < 1.0
    assert peak < 20 * 1024**2, f"{peak / 1024**2:.0f} MiB traced for a 20 kB upload"


async def test_a_streaming_wav_with_unknown_size_is_not_taken_for_thirteen_hours(
    audio_service: AudioServiceFactory, redis: Redis
) -> None:
    """Writers that cannot seek put 0xFFFFFFFF in the size fields: that means "unknown"."""
    data = bytearray(wav_header(1.0, real_seconds=1.0))
    data[4:8] = data[40:44] = b"\xff\xff\xff\xff"
    async with audio_service() as svc:
        response = await svc.client.post("/recordings", files=upload_files(bytes(data)))
    assert response.status_code == 201, response.text
    assert response.json()["duration_s"] == pytest.approx(1.0, abs=0.01)


@pytest.mark.parametrize("fmt", ["wav44k_stereo", "ogg_opus", "webm_opus", "mp3"])
async def test_longer_than_the_limit_is_refused(
    audio_service: AudioServiceFactory, redis: Redis, data_dir: Path, speech, tmp_path: Path,
    fmt: str,
) -> None:  # fmt: skip
    encoded = encode(speech["walk-the-dog"][1], fmt, tmp_path).read_bytes()
    async with audio_service(max_duration_s=2.0) as svc:
        response = await svc.client.post("/recordings", files=upload_files(encoded))
        body = await _refused(svc, redis, data_dir, response, 413, "audio_too_long")
    assert "2.0 s" in body["message"]


async def test_an_upload_over_the_size_limit_is_refused(
    audio_service: AudioServiceFactory, redis: Redis, data_dir: Path
) -> None:
    async with audio_service(max_upload_bytes=100_000) as svc:
        # Within the form overhead allowance, so the file-size check itself answers:
        exact = await svc.client.post(
            "/recordings", files=upload_files(wav_header(3.2, real_seconds=3.2))
        )
        await _refused(svc, redis, data_dir, exact, 413, "file_too_large")
        # Far over: the body limit refuses on the declared Content-Length.
        big = await svc.client.post("/recordings", files=upload_files(b"\x00" * 1_000_000))
        await _refused(svc, redis, data_dir, big, 413, "file_too_large")


def _multipart_stream(
    total: int, chunk: int, pulled: list[int]
) -> tuple[str, AsyncIterator[bytes]]:
    boundary = "whisp-test-boundary"

    async def body() -> AsyncIterator[bytes]:
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
            "Content-Type: audio/wav\r\n\r\n"
        ).encode()
        sent = 0
        while sent < total:
            pulled.append(chunk)
            sent += chunk
            yield b"\x00" * chunk
        yield f"\r\n--{boundary}--\r\n".encode()

    return f"multipart/form-data; boundary={boundary}", body()


async def test_a_chunked_upload_is_cut_off_while_streaming(
    audio_service: AudioServiceFactory, redis: Redis, data_dir: Path
) -> None:
    """No Content-Length: the server stops reading as soon as the limit is passed."""
    limit, chunk = 200_000, 64 * 1024
    pulled: list[int] = []
    content_type, body = _multipart_stream(50 * 1024**2, chunk, pulled)
    async with audio_service(max_upload_bytes=limit) as svc:
        response = await svc.client.post(
            "/recordings", content=body, headers={"Content-Type": content_type}
        )
        await _refused(svc, redis, data_dir, response, 413, "file_too_large")
    read = sum(pulled)
    assert read <= limit + 64 * 1024 + 2 * chunk, f"read {read} bytes of a 50 MiB body"


async def test_a_declared_oversize_body_is_refused_before_reading(
    audio_service: AudioServiceFactory, redis: Redis, data_dir: Path
) -> None:
    pulled: list[int] = []
    content_type, body = _multipart_stream(10 * 1024**2, 64 * 1024, pulled)
    async with audio_service(max_upload_bytes=100_000) as svc:
        response = await svc.client.post(
            "/recordings",
            content=body,
            headers={"Content-Type": content_type, "Content-Length": str(10 * 1024**2 + 200)},
        )
        await _refused(svc, redis, data_dir, response, 413, "file_too_large")
    assert pulled == [], "not a byte of the file should have been read"


@pytest.mark.parametrize(
    ("form", "words"),
    [
        ({"language": "english please"}, "field 'language'"),
        ({"agent_id": "../etc"}, "field 'agent_id'"),
        ({"prompt": "x" * 2001}, "field 'prompt'"),
        ({"word_timestamps": "maybe"}, "field 'word_timestamps'"),
        ({"langauge": "en"}, "field 'langauge': Extra inputs are not permitted"),
    ],
)
async def test_bad_form_fields_name_the_field(
    audio_service: AudioServiceFactory, redis: Redis, data_dir: Path, speech, form, words
) -> None:
    wav = speech["late-for-dinner"][1].read_bytes()
    async with audio_service() as svc:
        response = await svc.client.post("/recordings", files=upload_files(wav), data=form)
        body = await _refused(svc, redis, data_dir, response, 422, "invalid_request")
    assert words in body["message"], body


async def test_empty_form_fields_mean_unset(
    audio_service: AudioServiceFactory, redis: Redis, speech
) -> None:
    """A browser form sends every field, the unused ones empty: that asks for nothing."""
    wav = speech["late-for-dinner"][1].read_bytes()
    blank = dict.fromkeys(("agent_id", "pipeline", "session_id", "language", "prompt"), "")
    async with audio_service() as svc:
        response = await svc.client.post("/recordings", files=upload_files(wav), data=blank)
    assert response.status_code == 201, response.text
    [event] = await published(redis)
    assert (event.agent_id, event.pipeline, event.session_id) == (None, None, None)
    assert (event.language, event.prompt, event.word_timestamps) == (None, None, False)


async def test_a_missing_file_is_a_clear_422(
    audio_service: AudioServiceFactory, redis: Redis, data_dir: Path
) -> None:
    async with audio_service() as svc:
        response = await svc.client.post("/recordings", data={"language": "en"})
        body = await _refused(svc, redis, data_dir, response, 422, "invalid_request")
        assert "field 'file' is required" in body["message"]
        response = await svc.client.post("/recordings", content=b"just bytes")
        await _refused(svc, redis, data_dir, response, 422, "invalid_request")


# ---------------------------------------------------------------- ids and isolation


@pytest.mark.parametrize(
    "path",
    [
        "/audio/..%2F..%2Fetc%2Fpasswd",
        "/audio/..%2f..%2f..%2f..%2fetc%2fhostname",
        "/audio/%2e%2e",
        "/audio/..",
        "/audio/.",
        "/audio/" + "A" * 32,
        "/audio/" + "0" * 31 + ".",
        "/audio/etc.passwd",
        "/audio/%00" + "0" * 31,
        "/audio/0123456789abcdef0123456789abcdef%2F..",
    ],
)
async def test_ids_that_are_not_ids_get_a_json_404(
    audio_service: AudioServiceFactory, redis: Redis, path: str
) -> None:
    async with audio_service() as svc:
        response = await svc.client.get(path)
    assert response.status_code == 404, (path, response.text)
    assert response.json()["code"] == "not_found"
    assert "root:" not in response.text


async def test_users_cannot_reach_each_others_audio(
    audio_service: AudioServiceFactory, redis: Redis, speech
) -> None:
    wav = speech["late-for-dinner"][1].read_bytes()
    alice, bob = {"X-Whisp-User": "alice"}, {"X-Whisp-User": "bob"}
    async with audio_service() as svc:
        created = await svc.client.post("/recordings", files=upload_files(wav), headers=alice)
        rid = created.json()["recording_id"]
        unknown = await svc.client.get("/audio/" + "0" * 32, headers=bob)
        for method, url in [
            ("GET", f"/audio/{rid}"),
            ("GET", f"/audio/{rid}?variant=original"),
            ("GET", f"/recordings/{rid}"),
            ("DELETE", f"/recordings/{rid}"),
        ]:
            response = await svc.client.request(method, url, headers=bob)
            assert response.status_code == 404, (method, url)
            assert response.json() == unknown.json(), "foreign and unknown ids look the same"
        assert (await svc.client.get(f"/audio/{rid}", headers=alice)).status_code == 200
        info = (await svc.client.get(f"/recordings/{rid}", headers=alice)).json()
        assert info["user_id"] == "alice" and info["content_type"] == "audio/wav"
        # A trusted service (no user header) reads any recording: that is how workers fetch.
        assert (await svc.client.get(f"/audio/{rid}")).status_code == 200
        assert (await svc.client.delete(f"/recordings/{rid}", headers=alice)).status_code == 204
        assert (await svc.client.get(f"/audio/{rid}", headers=alice)).status_code == 404


async def test_the_service_token_is_required_when_configured(
    audio_service: AudioServiceFactory, redis: Redis, data_dir: Path, speech
) -> None:
    wav = speech["late-for-dinner"][1].read_bytes()
    token = "a-long-random-service-token"
    async with audio_service(service_token=token) as svc:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": token}):
            response = await svc.client.post(
                "/recordings", files=upload_files(wav), headers={**headers, "X-Whisp-User": "a"}
            )
            await _refused(svc, redis, data_dir, response, 401, "unauthorized")
            assert response.headers["www-authenticate"] == "Bearer"
        good = {"Authorization": f"Bearer {token}"}
        created = await svc.client.post(
            "/recordings", files=upload_files(wav), headers={**good, "X-Whisp-User": "alice"}
        )
        assert created.status_code == 201
        rid = created.json()["recording_id"]
        assert (await svc.client.get(f"/audio/{rid}")).status_code == 401
        assert (await svc.client.get(f"/audio/{rid}", headers=good)).status_code == 200
        as_bob = {**good, "X-Whisp-User": "bob"}
        assert (await svc.client.get(f"/audio/{rid}", headers=as_bob)).status_code == 404
        assert (await svc.client.get("/healthz")).status_code == 200  # ops stay open


def test_no_token_beyond_loopback_refuses_to_start(tmp_path: Path) -> None:
    settings = AudioSettings(host="0.0.0.0", data_dir=tmp_path)
    with pytest.raises(RuntimeError, match="WHISP_AUDIO__SERVICE_TOKEN"):
        create_app(settings, EventBus(BusSettings()))


# ---------------------------------------------------------------- the bus, retention, metrics


async def test_a_bus_outage_keeps_nothing(tmp_path: Path, speech) -> None:
    """Redis dies after start: the upload is refused with 503 and no file is left behind."""
    wav = speech["late-for-dinner"][1].read_bytes()
    data_dir = tmp_path / "data"
    with RedisServer() as server:
        bus = EventBus(BusSettings(redis_url=server.url))
        app = create_app(AudioSettings(data_dir=data_dir, public_url=BASE_URL), bus)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as client,
        ):
            server.stop()
            response = await client.post("/recordings", files=upload_files(wav))
    assert response.status_code == 503
    body = response.json()
    assert (body["code"], body["retryable"]) == ("unavailable", True)
    assert "message bus" in body["message"]
    assert response.headers["retry-after"] == "5"
    assert stored_files(data_dir) == []


async def test_retention_runs_in_the_background(
    audio_service: AudioServiceFactory, redis: Redis, speech
) -> None:
    wav = speech["late-for-dinner"][1].read_bytes()
    async with audio_service(retention_interval_s=0.1, retention_max_bytes=350_000) as svc:
        first = (await svc.client.post("/recordings", files=upload_files(wav))).json()
        second = (await svc.client.post("/recordings", files=upload_files(wav))).json()

        async def first_gone() -> bool:
            return (await svc.client.get(f"/audio/{first['recording_id']}")).status_code == 404

        await wait_for(first_gone, timeout=5)
        assert (await svc.client.get(f"/audio/{second['recording_id']}")).status_code == 200


def _sample(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_metrics_count_uploads_by_outcome(
    audio_service: AudioServiceFactory, redis: Redis, speech
) -> None:
    wav = speech["late-for-dinner"][1].read_bytes()
    accepted = {"outcome": "accepted", "code": ""}
    refused = {"outcome": "refused", "code": "unsupported_media_type"}
    invalid = {"outcome": "refused", "code": "invalid_request"}
    too_large = {"outcome": "refused", "code": "file_too_large"}
    unauthorized = {"outcome": "refused", "code": "unauthorized"}
    counted = (accepted, refused, invalid, too_large, unauthorized)
    before = [_sample("whisp_audio_uploads_total", labels) for labels in counted]
    seconds_before = _sample("whisp_audio_recorded_seconds_total", {"source": "upload"})
    token = "a-long-random-service-token"
    async with audio_service(max_upload_bytes=500_000, service_token=token) as svc:
        good = {"Authorization": f"Bearer {token}"}
        await svc.client.post("/recordings", files=upload_files(wav), headers=good)
        await svc.client.post(
            "/recordings", files=upload_files(b"not audio, not at all"), headers=good
        )
        # Refusals made before the route runs count too: a bad field, the body limit's
        # answer to a declared oversize, the token check.
        await svc.client.post(
            "/recordings", files=upload_files(wav), data={"language": "??"}, headers=good
        )
        await svc.client.post("/recordings", files=upload_files(b"\x00" * 1_000_000), headers=good)
        await svc.client.post("/recordings", files=upload_files(wav))
        text = (await svc.client.get("/metrics")).text
    after = [_sample("whisp_audio_uploads_total", labels) for labels in counted]
    assert after == [n + 1 for n in before]
    gained = _sample("whisp_audio_recorded_seconds_total", {"source": "upload"}) - seconds_before
    assert gained == pytest.approx(duration_s(speech["late-for-dinner"][1]), abs=0.01)
    assert "whisp_audio_active_recordings" in text


async def test_concurrent_uploads_each_get_their_own_recording(
    audio_service: AudioServiceFactory, redis: Redis, speech
) -> None:
    wav = speech["late-for-dinner"][1].read_bytes()
    async with audio_service() as svc:
        responses = await asyncio.gather(
            *(
                svc.client.post(
                    "/recordings", files=upload_files(wav), headers={"X-Whisp-User": f"u{i}"}
                )
                for i in range(8)
            )
        )
    assert [r.status_code for r in responses] == [201] * 8
    events = await published(redis)
    assert sorted(e.user_id for e in events) == sorted(f"u{i}" for i in range(8))
    assert len({e.recording_id for e in events}) == 8
