"""Device recordings over HTTP, with files played as microphones (FileReplaySource) so the
whole path — start, status, events, stop, store, publish — runs without a sound card.
The PulseAudio tests drive the same routes with a real capture device."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis

from tests.audio.conftest import published, serving
from tests.audio.signals import correlation
from tests.integration.bus_helpers import wait_for
from tests.support.speech import duration_s, read_wav
from tests.support.tools import unavailable
from whisp_audio.app import create_app
from whisp_audio.settings import AudioSettings
from whisp_recorder import AudioSource, FileReplaySource, RecorderState
from whisp_shared.audio import decode_audio
from whisp_shared.bus import EventBus
from whisp_shared.config import BusSettings
from whisp_shared.streams import PRIORITY_RECORDINGS

ALICE = {"X-Whisp-User": "alice"}
BOB = {"X-Whisp-User": "bob"}


@dataclass
class Devices:
    """Device name -> file; remembers every source it made, to check they were released."""

    files: dict[str, Path]
    made: list[FileReplaySource] = field(default_factory=list)

    def __call__(self, device: str | int | None) -> AudioSource:
        source = FileReplaySource(self.files[str(device)], after_end="silence")
        self.made.append(source)
        return source

    def open_count(self) -> int:
        return sum(source.is_open for source in self.made)


@dataclass
class Served:
    client: httpx.AsyncClient
    devices: Devices
    settings: AudioSettings
    app: FastAPI


@pytest.fixture
def devices(speech, tone_wav: Path) -> Devices:
    return Devices({"mic": speech["late-for-dinner"][1], "usb": tone_wav, "None": tone_wav})


@pytest.fixture
def served(bus_settings: BusSettings, data_dir: Path, devices: Devices):
    @asynccontextmanager
    async def run(**overrides: object) -> AsyncIterator[Served]:
        settings = AudioSettings(data_dir=data_dir, **overrides)  # type: ignore[arg-type]
        app = create_app(settings, EventBus(bus_settings), source_factory=devices)
        async with serving(app) as url:
            settings.public_url = url  # what workers would be told
            app.state.ingest.base_url = url
            async with httpx.AsyncClient(base_url=url, timeout=30) as client:
                yield Served(client, devices, settings, app)

    return run


async def sse_events(response: httpx.Response) -> AsyncIterator[dict]:
    """Parse `event: status` / `data: {...}` frames from a streaming response."""
    event, data = None, []
    async for line in response.aiter_lines():
        if line.startswith("event:"):
            event = line.split(":", 1)[1].strip()
        elif line.startswith("data:"):
            data.append(line.split(":", 1)[1].strip())
        elif line == "" and data:
            assert event == "status"
            yield json.loads("\n".join(data))
            event, data = None, []


async def test_record_stop_publish_and_serve(served, redis: Redis, speech) -> None:
    wav = speech["late-for-dinner"][1]
    async with served() as svc:
        started = await svc.client.post("/devices/mic/recording", headers=ALICE, json={
            "agent_id": "scribe", "language": "en", "session_id": "desk-1"})  # fmt: skip
        assert started.status_code == 201, started.text
        assert started.json()["state"] == "recording"
        await asyncio.sleep(0.5)
        status = (await svc.client.get("/devices/mic/recording", headers=ALICE)).json()
        assert status["state"] == "recording" and status["elapsed_s"] >= 0.4
        assert status["level_dbfs"] > -100
        await asyncio.sleep(duration_s(wav) - 0.5 + 0.2)
        stopped = await svc.client.post("/devices/mic/recording/stop", headers=ALICE)
        assert stopped.status_code == 201, stopped.text
        result = stopped.json()
        assert result["stopped_by"] == "stop"
        assert result["duration_s"] == pytest.approx(duration_s(wav) + 0.2, abs=0.25)
        [event] = await published(redis)
        assert event.recording_id == result["recording_id"] and event.user_id == "alice"
        assert (event.agent_id, event.language, event.session_id) == ("scribe", "en", "desk-1")
        assert event.audio_uri == f"{svc.settings.public_url}/audio/{result['recording_id']}"
        audio = await svc.client.get(event.audio_uri, headers=ALICE)
        corr, lag = correlation(decode_audio(audio.content), read_wav(wav)[0])
        assert corr > 0.99 and abs(lag) < 800  # replay is sample-exact; start costs ms
        after = (await svc.client.get("/devices/mic/recording", headers=ALICE)).json()
        assert after["state"] == "idle"
        assert after["last_recording_id"] == result["recording_id"]
        assert svc.devices.open_count() == 0


async def test_events_stream_every_change(served, redis: Redis) -> None:
    async with served() as svc:
        seen: list[dict] = []

        async def listen() -> None:
            async with svc.client.stream(
                "GET", "/devices/usb/recording/events", headers=ALICE
            ) as response:
                assert response.headers["content-type"].startswith("text/event-stream")
                async for status in sse_events(response):
                    seen.append(status)
                    if status["reason"] == "finish":
                        return

        listener = asyncio.create_task(listen())
        await wait_for(lambda: _true(seen), timeout=5)
        assert seen[0]["state"] == "idle"
        await svc.client.post("/devices/usb/recording", headers=ALICE)
        await asyncio.sleep(0.6)
        await svc.client.post("/devices/usb/recording/stop", headers=ALICE)
        await asyncio.wait_for(listener, timeout=5)
    changes = [(s["state"], s["reason"]) for s in seen if s["reason"] != "level"]
    assert changes == [
        ("armed", "arm"),
        ("recording", "start"),
        ("processing", "stop"),
        ("idle", "finish"),
    ]
    ticks = [s for s in seen if s["reason"] == "level" and s["state"] == "recording"]
    assert len(ticks) >= 3
    assert all(t["level_dbfs"] == pytest.approx(-9.0, abs=0.6) for t in ticks)
    assert ticks[-1]["elapsed_s"] > ticks[0]["elapsed_s"]


async def _true(items: list) -> bool:
    return bool(items)


async def test_a_client_that_disconnects_is_cancelled(served, redis: Redis) -> None:
    async with served(disconnect_grace_s=0.5) as svc:
        async with svc.client.stream(
            "GET", "/devices/usb/recording/events", headers=ALICE
        ) as response:
            await svc.client.post("/devices/usb/recording", headers=ALICE)
            lines = response.aiter_lines()
            await anext(lines)
            await asyncio.sleep(1.2)  # the open stream alone keeps it alive past the grace
            assert svc.devices.open_count() == 1
        closed_at = time.monotonic()
        # Stream closed, nobody polls: cancelled after the grace period, device released.
        while svc.devices.open_count():
            assert time.monotonic() - closed_at < 3, "not cancelled after the grace period"
            await asyncio.sleep(0.05)
        status = (await svc.client.get("/devices/usb/recording", headers=ALICE)).json()
    assert status["state"] == "idle"
    assert "client went away" in status["error"]
    assert await redis.xlen(PRIORITY_RECORDINGS) == 0


async def test_polling_keeps_a_recording_alive(served, redis: Redis) -> None:
    async with served(disconnect_grace_s=0.4) as svc:
        await svc.client.post("/devices/usb/recording", headers=ALICE)
        for _ in range(10):  # 1.5 s of polling, well past the grace period
            await asyncio.sleep(0.15)
            status = (await svc.client.get("/devices/usb/recording", headers=ALICE)).json()
            assert status["state"] == "recording"
        stopped = await svc.client.post("/devices/usb/recording/stop", headers=ALICE)
        assert stopped.status_code == 201
        assert stopped.json()["duration_s"] == pytest.approx(1.5, abs=0.3)


async def test_max_duration_stops_stores_and_publishes_by_itself(served, redis: Redis) -> None:
    async with served() as svc:
        await svc.client.post("/devices/usb/recording", headers=ALICE, json={"max_duration_s": 0.5})

        async def published_one() -> bool:
            return await redis.xlen(PRIORITY_RECORDINGS) == 1

        await wait_for(published_one, timeout=5)
        [event] = await published(redis)
        assert event.duration_s == pytest.approx(0.5, abs=0.02)
        assert svc.devices.open_count() == 0
        late = await svc.client.post("/devices/usb/recording/stop", headers=ALICE)
        assert late.status_code == 201
        assert late.json()["recording_id"] == event.recording_id
        assert late.json()["stopped_by"] == "max_duration"
        assert await redis.xlen(PRIORITY_RECORDINGS) == 1  # the late stop published nothing


async def test_a_stop_racing_the_max_duration_answers_with_that_recording(
    served, redis: Redis
) -> None:
    """The recorder stops itself on its timer thread; a stop that finds it PROCESSING before
    the event loop has heard of it waits for that news instead of refusing or polling."""
    async with served() as svc:
        recordings, registry = svc.app.state.recordings, svc.app.state.registry
        await svc.client.post("/devices/usb/recording", headers=ALICE, json={"max_duration_s": 0.3})
        recorder = registry.get(("alice", "usb"))
        deadline = time.monotonic() + 5
        # Blocking the loop on purpose: the recorder's notification stays queued, unheard.
        while recorder.state is not RecorderState.PROCESSING:
            assert time.monotonic() < deadline, "the recording did not stop by itself"
            time.sleep(0.001)
        assert recordings._sessions[("alice", "usb")].completing is None
        result = await recordings.stop("alice", "usb")
        assert result.stopped_by == "max_duration"
        assert result.accepted.duration_s == pytest.approx(0.3, abs=0.02)
    [event] = await published(redis)
    assert event.recording_id == result.accepted.recording_id


async def test_wrong_moves_are_409s_with_a_reason(served, redis: Redis) -> None:
    async with served() as svc:
        stop = await svc.client.post("/devices/usb/recording/stop", headers=ALICE)
        assert stop.status_code == 409 and stop.json()["code"] == "not_recording"
        cancel = await svc.client.post("/devices/usb/recording/cancel", headers=ALICE)
        assert cancel.status_code == 409 and cancel.json()["code"] == "not_recording"
        assert (await svc.client.post("/devices/usb/recording", headers=ALICE)).status_code == 201
        again = await svc.client.post("/devices/usb/recording", headers=ALICE)
        assert again.status_code == 409 and again.json()["code"] == "invalid_transition"
        assert "stop or cancel it first" in again.json()["message"]
        cancelled = await svc.client.post("/devices/usb/recording/cancel", headers=ALICE)
        assert cancelled.status_code == 200 and cancelled.json()["state"] == "idle"
        assert svc.devices.open_count() == 0
        too_long = await svc.client.post(
            "/devices/usb/recording", headers=ALICE, json={"max_duration_s": -1}
        )
        assert too_long.status_code == 422 and "max_duration_s" in too_long.json()["message"]
        typo = await svc.client.post(
            "/devices/usb/recording", headers=ALICE, json={"langauge": "en"}
        )
        assert typo.status_code == 422 and "'langauge'" in typo.json()["message"]
    assert await redis.xlen(PRIORITY_RECORDINGS) == 0


async def test_users_record_on_the_same_device_independently(served, redis: Redis) -> None:
    async with served() as svc:
        for who in (ALICE, BOB):
            assert (await svc.client.post("/devices/usb/recording", headers=who)).status_code == 201
        await asyncio.sleep(0.3)
        # Bob's cancel touches only Bob's recording.
        await svc.client.post("/devices/usb/recording/cancel", headers=BOB)
        assert (await svc.client.get("/devices/usb/recording", headers=ALICE)).json()[
            "state"
        ] == "recording"
        stopped = await svc.client.post("/devices/usb/recording/stop", headers=ALICE)
        assert stopped.status_code == 201
        bob_stop = await svc.client.post("/devices/usb/recording/stop", headers=BOB)
        assert bob_stop.status_code == 409
    [event] = await published(redis)
    assert event.user_id == "alice"


async def test_asking_about_devices_creates_no_state(served, redis: Redis) -> None:
    async with served() as svc:
        recordings = svc.app.state.recordings
        for i in range(50):
            status = await svc.client.get(f"/devices/probe-{i}/recording", headers=ALICE)
            assert status.json()["state"] == "idle"
            stop = await svc.client.post(f"/devices/probe-{i}/recording/stop", headers=ALICE)
            assert stop.status_code == 409
        assert recordings._sessions == {}
        # Sessions that were used are forgotten once idle and unwatched for long enough.
        await svc.client.post("/devices/usb/recording", headers=ALICE)
        await svc.client.post("/devices/usb/recording/cancel", headers=ALICE)
        assert recordings.forget_idle() == 0
        assert recordings.forget_idle(now=time.monotonic() + 601) == 1
        assert recordings._sessions == {} and svc.app.state.registry.get(("alice", "usb")) is None


async def test_shutdown_releases_devices(served, redis: Redis) -> None:
    async with served() as svc:
        await svc.client.post("/devices/usb/recording", headers=ALICE)
        await svc.client.post("/devices/mic/recording", headers=BOB)
        assert svc.devices.open_count() == 2
    assert svc.devices.open_count() == 0


async def test_without_an_audio_server_devices_are_listed_empty_with_a_reason(
    bus_settings: BusSettings, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real PortAudio path (no source factory), pointed at an audio server that is
    not there."""
    monkeypatch.setenv("PULSE_SERVER", "unix:/nonexistent/pulse/native")
    app = create_app(AudioSettings(data_dir=data_dir), EventBus(bus_settings))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://audio.test"
        ) as client,
    ):
        listing = (await client.get("/devices")).json()
        if listing["devices"]:
            unavailable("this machine has a sound card of its own")
        assert "PulseAudio" in listing["message"]
        missing = await client.post("/devices/no-such-mic/recording")
        assert missing.status_code == 404, missing.text
        assert missing.json()["code"] == "unknown_device"
