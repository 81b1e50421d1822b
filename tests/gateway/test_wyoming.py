"""The gateway's Wyoming server with the `wyoming` library's own client: `describe`, a
transcription with its events in order (streaming and not), empty audio, any format
converted, every kind of bad frame, the allowlist, the owner and the limits.

The gateway and a real audio service run on real sockets against the session's Redis;
this test plays the transcription worker on the bus (it reads the live recording's audio
and publishes partial text and the transcript as a worker does), so what the Wyoming
client gets is known exactly. Real speech through real workers: tests/e2e/test_wyoming.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt
import pytest
from redis.asyncio import Redis
from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.event import Event, async_read_event
from wyoming.info import Describe, Info

from tests.gateway.conftest import GatewayFactory, Served, add_users, signed_in
from tests.gateway.server import serving
from tests.gateway.services import stack
from tests.integration.bus_helpers import transcript_for
from whisp_audio.app import create_app as create_audio_app
from whisp_audio.settings import AudioSettings
from whisp_cli.redis_server import free_port
from whisp_gateway.repository import SqlRepository
from whisp_shared.bus import EventBus
from whisp_shared.codec import decode_entry
from whisp_shared.config import BusSettings
from whisp_shared.events import LiveRecordingStarted
from whisp_shared.live_audio import LiveEnd, live_audio_stream, read_entry
from whisp_shared.streams import LIVE_RECORDINGS, TRANSCRIPTS
from whisp_shared.views import TranscriptPartial

RATE = 16_000


@pytest.fixture
def audio_url(bus_settings: BusSettings, tmp_path: Path) -> Iterator[str]:
    """A real audio service: it opens the live recordings and stores their audio."""
    settings = AudioSettings(data_dir=tmp_path / "audio", audio_uri="file")
    with serving(create_audio_app(settings, EventBus(bus_settings))) as url:
        yield url


@contextmanager
def wyoming_gateway(
    gateway: GatewayFactory, audio_url: str, **wyoming: Any
) -> Iterator[tuple[Served, str]]:
    """A gateway whose Wyoming server listens on a free port: (its HTTP URL, tcp:// URI)."""
    with gateway(audio_service_url=audio_url, wyoming={"port": free_port(), **wyoming}) as url:
        port = url.app.state.wyoming.port
        assert port, "the Wyoming server is not listening"
        yield url, f"tcp://127.0.0.1:{port}"


@asynccontextmanager
async def client(uri: str) -> AsyncIterator[AsyncTcpClient]:
    async with AsyncTcpClient.from_uri(uri) as c:
        yield c


async def read(c: AsyncTcpClient, timeout: float = 10) -> Event | None:
    async with asyncio.timeout(timeout):
        return await c.read_event()


async def until(c: AsyncTcpClient, kind: str, seen: list[Event]) -> Event:
    while True:
        event = await read(c)
        assert event is not None, f"closed before {kind}; got {[e.type for e in seen]}"
        seen.append(event)
        if event.type == kind:
            return event


def tone(seconds: float, rate: int = RATE, hz: float = 440.0) -> npt.NDArray[np.float64]:
    t = np.arange(int(seconds * rate)) / rate
    return 0.5 * np.sin(2 * np.pi * hz * t)


def pcm(samples: npt.NDArray[np.float64], width: int = 2, channels: int = 1) -> bytes:
    """Float samples as PCM of `width` bytes (8-bit unsigned, as WAV has it) on `channels`."""
    scaled = samples * (2 ** (8 * width - 1) - 1)
    if width == 1:
        frames = (scaled + 128).astype(np.uint8)
    elif width == 3:
        whole = scaled.astype("<i4").tobytes()
        frames = np.frombuffer(whole, np.uint8).reshape(-1, 4)[:, :3]
    else:
        frames = scaled.astype(f"<i{width}")
    mono = np.asarray(frames)
    return np.repeat(mono.reshape(len(samples), -1), channels, axis=0).tobytes()


def chunks(data: bytes, rate: int, width: int, channels: int, samples: int = 1024) -> list[Event]:
    step = samples * width * channels
    return [AudioChunk(rate, width, channels, data[i : i + step]).event()
            for i in range(0, len(data), step)]  # fmt: skip


# --- the worker, played on the bus ---------------------------------------------------------


@dataclass
class Worker:
    """Takes live recordings as a transcription worker does: publishes `partials` as the
    audio starts coming, follows the audio to its end, and publishes `final` at a commit."""

    redis: Redis
    bus: EventBus
    partials: list[str] = field(default_factory=list)
    final: str = "Turn on the kitchen lights."
    started: list[LiveRecordingStarted] = field(default_factory=list)
    audio: dict[str, npt.NDArray[np.float32]] = field(default_factory=dict)
    ended: dict[str, str] = field(default_factory=dict)

    async def run(self) -> None:
        last = "0-0"
        while True:
            found = await self.redis.xread({LIVE_RECORDINGS: last}, block=100) or []
            for _stream, entries in found:
                for entry_id, fields in entries:
                    last = entry_id
                    event = decode_entry(fields)
                    assert isinstance(event, LiveRecordingStarted)
                    self.started.append(event)
                    await self._take(event)

    async def _take(self, event: LiveRecordingStarted) -> None:
        for seq, text in enumerate(self.partials):
            partial = TranscriptPartial(
                recording_id=event.recording_id,
                user_id=event.user_id,
                text=text,
                stable_chars=len(text),
                sequence=seq,
            )
            await self.bus.publish_live(partial)
        stream, last = live_audio_stream(event.recording_id), "0-0"
        pieces: list[npt.NDArray[np.float32]] = []
        while True:
            found = await self.redis.xread({stream: last}, block=100) or []
            for _stream, entries in found:
                for entry_id, fields in entries:
                    last = entry_id
                    piece = read_entry(fields)
                    if isinstance(piece, LiveEnd):
                        self.audio[event.recording_id] = np.concatenate(
                            pieces or [np.zeros(0, np.float32)]
                        )
                        self.ended[event.recording_id] = piece.kind
                        if piece.kind == "commit":
                            await self.bus.publish(TRANSCRIPTS, transcript_for(event, self.final))
                        return
                    pieces.append(piece)


@asynccontextmanager
async def worker(redis: Redis, publisher: EventBus, **kwargs: Any) -> AsyncIterator[Worker]:
    playing = Worker(redis, publisher, **kwargs)
    task = asyncio.create_task(playing.run())
    try:
        yield playing
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task


# --- describe ---------------------------------------------------------------------------


async def test_describe_answers_info_with_an_asr_program(
    gateway: GatewayFactory, audio_url: str
) -> None:
    with wyoming_gateway(gateway, audio_url) as (_url, uri):
        async with client(uri) as c:
            await c.write_event(Describe().event())
            event = await read(c)
            assert event is not None
            assert event.type == "info"
            info = Info.from_event(event)
            await c.write_event(Event("ping", {"text": "hi"}))
            pong = await read(c)
    assert [p.name for p in info.asr] == ["whisptt"]
    program = info.asr[0]
    assert program.installed is True
    assert program.version == "0.1.0"
    assert program.attribution.name == "WhisPTT"
    assert program.supports_transcript_streaming is True
    assert [(m.name, m.languages, m.installed) for m in program.models] == [
        ("tiny.en", ["en"], True)
    ]
    assert pong is not None
    assert (pong.type, pong.data.get("text")) == ("pong", "hi")


# --- transcribing -----------------------------------------------------------------------


async def test_a_transcription_streams_settled_text_then_the_final_into_the_owners_history(
    gateway: GatewayFactory, audio_url: str, sqlite_url: str, redis: Redis, publisher: EventBus
) -> None:
    tokens = await add_users(sqlite_url, "alice", "bob")
    speech = pcm(tone(1.0))
    with wyoming_gateway(gateway, audio_url, user="alice") as (url, uri):
        async with worker(redis, publisher, partials=["Turn on", "Turn on the kitchen"]) as w:
            seen: list[Event] = []
            async with client(uri) as c:
                await c.write_event(
                    Transcribe(language="en", transcript_names=["Kitchen Lights"]).event()
                )
                await c.write_event(AudioStart(RATE, 2, 1).event())
                for chunk in chunks(speech, RATE, 2, 1):
                    await c.write_event(chunk)
                # Settled text comes while the audio is still "being spoken"...
                await until(c, "transcript-chunk", seen)
                await until(c, "transcript-chunk", seen)
                await c.write_event(AudioStop().event())
                # ...and the final after audio-stop; the connection stays for the next one.
                final = await until(c, "transcript", seen)
                await until(c, "transcript-stop", seen)
                await c.write_event(Describe().event())
                assert (await until(c, "info", seen)).type == "info"
        async with signed_in(url, tokens, "alice", "bob") as (alice, bob):
            mine = (await alice.client.get("/api/transcripts")).json()["items"]
            theirs = (await bob.client.get("/api/transcripts")).json()["items"]

    assert [e.type for e in seen] == ["transcript-start", "transcript-chunk", "transcript-chunk",
                                      "transcript", "transcript-stop", "info"]  # fmt: skip
    assert [e.data["text"] for e in seen[1:3]] == ["Turn on", " the kitchen"]
    assert Transcript.from_event(final).text == "Turn on the kitchen lights."
    assert final.data.get("language") == "en"
    (started,) = w.started
    assert started.user_id == alice.id
    assert started.language == "en"
    assert "Kitchen Lights" in (started.prompt or "")
    assert len(w.audio[started.recording_id]) == pytest.approx(RATE, abs=160)
    assert [(t["recording_id"], t["text"], t["status"]) for t in mine] == [
        (started.recording_id, "Turn on the kitchen lights.", "done")
    ]
    assert theirs == []


async def test_without_streaming_only_the_transcript_comes(
    gateway: GatewayFactory, audio_url: str, redis: Redis, publisher: EventBus
) -> None:
    with wyoming_gateway(gateway, audio_url, streaming=False) as (_url, uri):
        async with worker(redis, publisher, partials=["Turn on"]), client(uri) as c:
            await c.write_event(Describe().event())
            info = Info.from_event(await read(c))  # type: ignore[arg-type]
            await c.write_event(Transcribe().event())
            await c.write_event(AudioStart(RATE, 2, 1).event())
            for chunk in chunks(pcm(tone(0.5)), RATE, 2, 1):
                await c.write_event(chunk)
            await c.write_event(AudioStop().event())
            event = await read(c)
    assert info.asr[0].supports_transcript_streaming is False
    assert event is not None
    assert (event.type, event.data["text"]) == ("transcript", "Turn on the kitchen lights.")


@pytest.mark.parametrize("start", [True, False], ids=["audio-start-stop", "audio-stop-alone"])
async def test_no_audio_is_an_empty_transcript_and_no_recording(
    gateway: GatewayFactory, audio_url: str, redis: Redis, start: bool
) -> None:
    with wyoming_gateway(gateway, audio_url) as (_url, uri):
        async with client(uri) as c:
            await c.write_event(Transcribe(language="en").event())
            if start:
                await c.write_event(AudioStart(RATE, 2, 1).event())
                await c.write_event(AudioChunk(RATE, 2, 1, b"").event())
            await c.write_event(AudioStop().event())
            seen: list[Event] = []
            await until(c, "transcript-stop", seen)
    assert [e.type for e in seen] == ["transcript-start", "transcript", "transcript-stop"]
    assert seen[1].data["text"] == ""
    assert await redis.xlen(LIVE_RECORDINGS) == 0


FORMATS = [(44_100, 4, 2), (8_000, 1, 1), (48_000, 3, 1), (22_050, 2, 2), (16_000, 2, 1)]


@pytest.mark.parametrize(("rate", "width", "channels"), FORMATS,
                         ids=[f"{r}Hz-{w}B-{c}ch" for r, w, c in FORMATS])  # fmt: skip
async def test_any_rate_width_and_channels_reach_the_live_path_as_16k_mono(
    gateway: GatewayFactory,
    audio_url: str,
    redis: Redis,
    publisher: EventBus,
    rate: int,
    width: int,
    channels: int,
) -> None:
    sent = pcm(tone(1.0, rate), width, channels)
    with wyoming_gateway(gateway, audio_url, streaming=False) as (_url, uri):
        async with worker(redis, publisher) as w, client(uri) as c:
            await c.write_event(AudioStart(rate, width, channels).event())
            for chunk in chunks(sent, rate, width, channels):
                await c.write_event(chunk)
            await c.write_event(AudioStop().event())
            event = await read(c)
    assert event is not None
    assert event.type == "transcript"
    (heard,) = w.audio.values()
    assert len(heard) == pytest.approx(RATE, abs=RATE // 100)
    spectrum = np.abs(np.fft.rfft(heard))
    assert np.argmax(spectrum) * RATE / len(heard) == pytest.approx(440, abs=3)
    rms = float(np.sqrt(np.mean(heard[800:-800] ** 2)))
    assert rms == pytest.approx(0.5 / np.sqrt(2), rel=0.05)  # same level, stereo not doubled


# --- bad frames -------------------------------------------------------------------------


@asynccontextmanager
async def raw(uri: str) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    host, port = uri.removeprefix("tcp://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        yield reader, writer
    finally:
        writer.close()


def header(**fields: Any) -> bytes:
    return json.dumps(fields).encode() + b"\n"


LIMIT = 64 * 1024
BROKEN: dict[str, tuple[bytes, str]] = {
    "not-json": (b"this is not json\n", "invalid_frame"),
    "no-type": (header(data={"text": "hi"}), "invalid_frame"),
    "not-an-object": (b"[1, 2, 3]\n", "invalid_frame"),
    "short-data-length": (
        header(type="transcribe", data_length=5) + b'{"language": "en"}',
        "invalid_frame",
    ),
    "bad-length-type": (header(type="audio-chunk", payload_length="many"), "invalid_frame"),
    "oversized-payload": (
        header(
            type="audio-chunk",
            data={"rate": 16000, "width": 2, "channels": 1},
            payload_length=LIMIT * 100,
        ),
        "event_too_large",
    ),
    "oversized-data": (header(type="transcribe", data_length=LIMIT + 1), "event_too_large"),
    "oversized-header": (
        b'{"type": "describe", "pad": "' + b"x" * LIMIT + b'"}\n',
        "event_too_large",
    ),
}


@pytest.mark.parametrize(("frame", "code"), BROKEN.values(), ids=BROKEN.keys())
async def test_a_broken_frame_gets_an_error_and_the_connection_closes(
    gateway: GatewayFactory, audio_url: str, frame: bytes, code: str
) -> None:
    with wyoming_gateway(gateway, audio_url, max_event_bytes=LIMIT) as (url, uri):
        async with raw(uri) as (reader, writer):
            writer.write(frame)
            await writer.drain()
            async with asyncio.timeout(10):
                error = await async_read_event(reader)
                after = await async_read_event(reader)
        assert error is not None
        assert error.type == "error", error
        assert error.data["code"] == code
        assert error.data["text"]
        assert after is None  # closed
        async with client(uri) as c:  # the server itself goes on
            await c.write_event(Describe().event())
            assert (await read(c)).type == "info"  # type: ignore[union-attr]
        assert httpx.get(f"{url}/readyz").status_code == 200


BAD_EVENTS: dict[str, tuple[Event, str]] = {
    "unknown-type": (Event("synthesize", {"text": "hello"}), "unknown_event"),
    "bad-rate": (
        Event("audio-start", {"rate": "fast", "width": 2, "channels": 1}),
        "invalid_event",
    ),
    "six-channels": (AudioStart(RATE, 2, 6).event(), "invalid_event"),
    "bad-language": (Event("transcribe", {"language": "not a language"}), "invalid_event"),
    "half-a-frame": (AudioChunk(RATE, 2, 1, b"\x00\x01\x02").event(), "invalid_audio"),
    "other-program": (Event("select-program", {"name": "faster-whisper"}), "invalid_event"),
}


@pytest.mark.parametrize(("event", "code"), BAD_EVENTS.values(), ids=BAD_EVENTS.keys())
async def test_a_bad_event_gets_an_error_and_the_connection_stays(
    gateway: GatewayFactory, audio_url: str, event: Event, code: str
) -> None:
    with wyoming_gateway(gateway, audio_url) as (_url, uri):
        async with client(uri) as c:
            await c.write_event(event)
            seen: list[Event] = []
            error = await until(c, "error", seen)  # (a chunk starts the audio: transcript-start)
            await c.write_event(Describe().event())
            info = await until(c, "info", seen)
    assert error.data["code"] == code
    assert info.type == "info"


# --- who may talk, and how much ---------------------------------------------------------


async def test_a_client_outside_the_allowlist_is_refused(
    gateway: GatewayFactory, audio_url: str
) -> None:
    with wyoming_gateway(gateway, audio_url, allow=["10.0.0.0/8"]) as (_url, uri):
        async with client(uri) as c:
            await c.write_event(Describe().event())
            error = await read(c)
            after = await read(c)
    assert error is not None
    assert (error.type, error.data["code"]) == ("error", "client_not_allowed")
    assert after is None


async def test_a_shared_gateway_must_name_the_owner(
    gateway: GatewayFactory, audio_url: str, sqlite_url: str
) -> None:
    await add_users(sqlite_url, "alice")
    for owner, words in ((None, "web.wyoming.user"), ("carol", "does not exist")):
        with wyoming_gateway(gateway, audio_url, user=owner) as (url, uri):
            async with client(uri) as c:
                await c.write_event(Describe().event())
                error = await read(c)
            assert httpx.get(f"{url}/readyz").status_code == 200  # the web page stays up
        assert error is not None
        assert (error.type, error.data["code"]) == ("error", "wyoming_user_not_configured")
        assert words in error.data["text"]


async def test_a_satellite_gets_its_own_agent(
    gateway: GatewayFactory, audio_url: str, redis: Redis, publisher: EventBus
) -> None:
    satellites = {"127.0.0.1": {"agent_id": "cleanup"}}
    with wyoming_gateway(gateway, audio_url, satellites=satellites, streaming=False) as (_, uri):
        async with worker(redis, publisher) as w, client(uri) as c:
            for chunk in chunks(pcm(tone(0.3)), RATE, 2, 1):  # no audio-start: chunks say it
                await c.write_event(chunk)
            await c.write_event(AudioStop().event())
            event = await read(c)
    assert event is not None
    assert event.type == "transcript"
    assert [(s.agent_id, s.user_id) for s in w.started] == [("cleanup", "local")]


async def test_audio_past_the_limit_is_not_taken_and_what_came_is_transcribed(
    gateway: GatewayFactory, audio_url: str, redis: Redis, publisher: EventBus
) -> None:
    with wyoming_gateway(gateway, audio_url, max_audio_s=0.5, streaming=False) as (_, uri):
        async with worker(redis, publisher) as w, client(uri) as c:
            await c.write_event(AudioStart(RATE, 2, 1).event())
            for chunk in chunks(pcm(tone(2.0)), RATE, 2, 1):
                await c.write_event(chunk)
            await c.write_event(AudioStop().event())
            event = await read(c)
    assert event is not None
    assert (event.type, event.data["text"]) == ("transcript", "Turn on the kitchen lights.")
    (heard,) = w.audio.values()
    assert len(heard) == pytest.approx(RATE // 2, abs=160)


async def test_an_idle_connection_is_closed(gateway: GatewayFactory, audio_url: str) -> None:
    with wyoming_gateway(gateway, audio_url, idle_timeout_s=0.3) as (_url, uri):
        async with client(uri) as c:
            error = await read(c, timeout=5)
            after = await read(c, timeout=5)
    assert error is not None
    assert (error.type, error.data["code"]) == ("error", "idle_timeout")
    assert after is None


async def test_a_satellite_without_an_agent_gets_the_owners_default_agent(
    gateway: GatewayFactory,
    bus_settings: BusSettings,
    redis: Redis,
    publisher: EventBus,
    sqlite_url: str,
    tmp_path: Path,
) -> None:
    """`default_agent` names an agent or a pipeline (the agent service says which); one the
    owner may no longer run leaves the transcript without an agent rather than failing it."""
    tokens = await add_users(sqlite_url, "alice")
    wyoming = {"port": free_port(), "user": "alice", "streaming": False}

    async def transcribe(uri: str) -> None:
        async with client(uri) as c:
            for chunk in chunks(pcm(tone(0.3)), RATE, 2, 1):
                await c.write_event(chunk)
            await c.write_event(AudioStop().event())
            event = await read(c)
        assert event is not None and event.type == "transcript"

    with stack(gateway, bus_settings, tmp_path, wyoming=wyoming) as services:
        uri = f"tcp://127.0.0.1:{services.gateway.app.state.wyoming.port}"
        async with (
            signed_in(services.gateway, tokens, "alice") as (alice,),
            worker(redis, publisher) as w,
        ):
            for default in ("tidy", "cleanup"):
                saved = await alice.client.patch(
                    "/api/me/settings", json={"default_agent": default}
                )
                assert saved.status_code == 200, saved.text
                await transcribe(uri)
            # Saved while it existed, then the agent service is asked about a name it
            # does not know (the registry changed): no agent, the transcript still comes.
            repo = SqlRepository(sqlite_url)
            user = await repo.user_for_token(tokens["alice"])
            assert user is not None
            settings = await repo.get_settings(user.id)
            await repo.put_settings(user.id, settings.model_copy(update={"default_agent": "gone"}))
            await repo.close()
            await transcribe(uri)
    assert [(s.agent_id, s.pipeline) for s in w.started] == [
        (None, "tidy"),
        ("cleanup", None),
        (None, None),
    ]
    assert {s.user_id for s in w.started} == {user.id}
