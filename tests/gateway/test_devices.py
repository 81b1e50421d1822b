"""`/api/devices`: a user drives the audio service's recorder through the gateway, with their
own settings. Real gateway, audio service, agent service and Redis; the microphone `mic` is
a file played in real time (`FileReplaySource`), any other name the real PortAudio path."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from tests.gateway.conftest import GatewayFactory, Signed, add_users, signed_in
from tests.gateway.services import Stack, stack, tone_wav
from tests.gateway.sse import Stream
from tests.integration.bus_helpers import wait_for
from whisp_audio.app import microphone
from whisp_audio.device_recordings import SourceFactory
from whisp_gateway.hub import stream_id_key
from whisp_recorder import AudioSource, FileReplaySource
from whisp_shared.codec import decode_entry
from whisp_shared.config import BusSettings
from whisp_shared.dictation import Replacement
from whisp_shared.events import RecordingCompleted
from whisp_shared.streams import PRIORITY_RECORDINGS, RECORDINGS

MIC = "/api/devices/mic/recording"
ALICE = {
    "vocabulary": ["Siobhan Okonkwo", "Kestrel Dynamics"],
    "replacements": [{"spoken": "k8s", "written": "Kubernetes"}],
    "default_agent": "helper",
    "language": "en",
    "keep_audio": False,
}


def replayed(wav: Path) -> SourceFactory:
    """`mic` plays `wav` (then silence, like a quiet room); other names are real devices."""

    def source(device: str | int | None) -> AudioSource:
        if device == "mic":
            return FileReplaySource(wav, after_end="silence")
        return microphone(device)

    return source


@contextmanager
def device_stack(
    gateway: GatewayFactory, bus_settings: BusSettings, tmp_path: Path, **settings: object
) -> Iterator[Stack]:
    wav = tmp_path / "mic.wav"
    tone_wav(wav, seconds=3.0)
    with stack(gateway, bus_settings, tmp_path, replayed(wav), **settings) as services:
        yield services


async def published(redis: Redis, count: int) -> list[RecordingCompleted]:
    """What the audio service published (either lane), in publishing order."""

    async def entries() -> list[tuple[bytes, dict[bytes, bytes]]]:
        found = [e for s in (PRIORITY_RECORDINGS, RECORDINGS) for e in await redis.xrange(s)]
        return sorted(found, key=lambda entry: stream_id_key(entry[0].decode()))

    async def arrived() -> bool:
        return len(await entries()) >= count

    await wait_for(arrived)
    events = [decode_entry(fields) for _, fields in await entries()]
    assert all(isinstance(e, RecordingCompleted) for e in events)
    return events  # type: ignore[return-value]


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"code", "message", "retryable"}
    assert body["code"] == code, body
    assert body["message"]


async def record(user: Signed, seconds: float, body: dict[str, Any] | None = None) -> Any:
    """Start on `mic`, record for `seconds`, stop: the stop's answer."""
    started = await user.client.post(MIC, json=body)
    assert started.status_code == 201, started.text
    await asyncio.sleep(seconds)
    stopped = await user.client.post(f"{MIC}/stop")
    assert stopped.status_code == 201, stopped.text
    return stopped.json()


async def test_a_device_recording_carries_its_owners_settings_and_only_theirs(
    gateway: GatewayFactory,
    bus_settings: BusSettings,
    sqlite_url: str,
    tmp_path: Path,
    redis: Redis,
) -> None:
    tokens = await add_users(sqlite_url, "alice", "bob")
    with device_stack(gateway, bus_settings, tmp_path, devices_enabled=True) as services:
        async with signed_in(services.gateway, tokens, "alice", "bob") as (alice, bob):
            assert (await alice.client.put("/api/me/settings", json=ALICE)).status_code == 200
            started = await alice.client.post(MIC, json={"vocabulary": ["Zanzibar"]})
            assert started.status_code == 201, started.text
            assert started.json()["state"] == "recording"
            assert started.json()["device"] == "mic"

            # Bob records on the same device name: his own recorder, his own settings.
            bobs = await record(bob, 0.6)
            assert "audio_uri" not in bobs  # internal fields stay behind the gateway
            # Bob's stop, cancel and status never reach alice's recording.
            assert_error(await bob.client.post(f"{MIC}/stop"), 409, "not_recording")
            assert_error(await bob.client.post(f"{MIC}/cancel"), 409, "not_recording")
            bob_status = (await bob.client.get(MIC)).json()
            assert bob_status["state"] == "idle"
            assert bob_status["last_recording_id"] == bobs["recording_id"]
            alice_status = (await alice.client.get(MIC)).json()
            assert alice_status["state"] == "recording"
            assert alice_status["elapsed_s"] >= 0.6
            assert alice_status["last_recording_id"] is None

            alices = (await alice.client.post(f"{MIC}/stop")).json()
            assert alices["duration_s"] >= 0.6
            first, second = await published(redis, 2)

    assert (first.recording_id, first.user_id) == (bobs["recording_id"], bob.id)
    assert first.vocabulary == [] and first.replacements == []
    assert first.keep_audio is True
    assert (first.language, first.agent_id, first.pipeline) == (None, None, None)

    assert (second.recording_id, second.user_id) == (alices["recording_id"], alice.id)
    assert second.vocabulary == ["Siobhan Okonkwo", "Kestrel Dynamics", "Zanzibar"]
    assert second.replacements == [Replacement(spoken="k8s", written="Kubernetes")]
    assert second.keep_audio is False
    assert (second.language, second.agent_id, second.pipeline) == ("en", "helper", None)


async def test_the_body_chooses_the_agent_and_language_over_the_settings(
    gateway: GatewayFactory,
    bus_settings: BusSettings,
    sqlite_url: str,
    tmp_path: Path,
    redis: Redis,
) -> None:
    tokens = await add_users(sqlite_url, "alice")
    with device_stack(gateway, bus_settings, tmp_path, devices_enabled=True) as services:
        async with signed_in(services.gateway, tokens, "alice") as (alice,):
            await alice.client.put("/api/me/settings", json=ALICE)
            await record(alice, 0.3, {"agent_id": None, "language": "de"})  # no agent at all
            await record(alice, 0.3, {"pipeline": "tidy", "session_id": "desk-1"})
            await record(alice, 0.3, {"max_duration_s": 30, "keep_audio": True})
            no_agent, tidy, default = await published(redis, 3)
    assert (no_agent.agent_id, no_agent.pipeline, no_agent.language) == (None, None, "de")
    assert (tidy.agent_id, tidy.pipeline, tidy.session_id) == (None, "tidy", "desk-1")
    assert (default.agent_id, default.pipeline) == ("helper", None)
    assert default.keep_audio is False  # the settings' "do not keep" wins over the body


BAD_BODIES: list[tuple[str, Any]] = [
    ("unknown field", {"colour": "red"}),
    ("misspelt option", {"langauge": "en"}),
    ("bad language", {"language": "english please"}),
    ("zero duration", {"max_duration_s": 0}),
    ("string as list", {"vocabulary": "Kestrel"}),
    ("bad agent name", {"agent_id": "../etc"}),
    ("rule without written", {"replacements": [{"spoken": "x"}]}),
    ("not an object", ["vocabulary"]),
]


async def test_bad_requests_are_refused_and_nothing_starts(
    gateway: GatewayFactory,
    bus_settings: BusSettings,
    sqlite_url: str,
    tmp_path: Path,
    redis: Redis,
) -> None:
    tokens = await add_users(sqlite_url, "alice")
    settings = {"devices_enabled": True, "rate_burst": 50}  # a refused start costs a token
    with device_stack(gateway, bus_settings, tmp_path, **settings) as services:
        async with signed_in(services.gateway, tokens, "alice") as (alice,):
            for why, body in BAD_BODIES:
                response = await alice.client.post(MIC, json=body)
                assert response.status_code == 422, (why, response.text)
                assert_error(response, 422, "invalid_request")
            not_json = await alice.client.post(
                MIC, content=b"{nope", headers={"Content-Type": "application/json"}
            )
            assert not_json.status_code in (400, 422), not_json.text
            long_name = await alice.client.get(f"/api/devices/{'x' * 129}/recording")
            assert_error(long_name, 422, "invalid_request")
            assert (await alice.client.get(MIC)).json()["state"] == "idle"

            # The audio service's own refusals pass through with their codes.
            assert_error(await alice.client.post(f"{MIC}/stop"), 409, "not_recording")
            assert (await alice.client.post(MIC)).status_code == 201
            assert_error(await alice.client.post(MIC), 409, "invalid_transition")
            cancelled = await alice.client.post(f"{MIC}/cancel")
            assert cancelled.status_code == 200, cancelled.text
            assert cancelled.json()["state"] == "idle"
            unknown = await alice.client.post("/api/devices/no-such-mic/recording")
            assert_error(unknown, 404, "unknown_device")
            assert await redis.xlen(PRIORITY_RECORDINGS) + await redis.xlen(RECORDINGS) == 0


async def test_the_status_stream_is_the_callers_own(
    gateway: GatewayFactory, bus_settings: BusSettings, sqlite_url: str, tmp_path: Path
) -> None:
    tokens = await add_users(sqlite_url, "alice", "bob")
    timeout = httpx.Timeout(10.0, read=None)  # quiet streams are normal; the waits bound it
    with device_stack(gateway, bus_settings, tmp_path, devices_enabled=True) as services:
        async with (
            signed_in(services.gateway, tokens, "alice", "bob") as (alice, bob),
            alice.client.stream("GET", f"{MIC}/events", timeout=timeout) as alices,
            bob.client.stream("GET", f"{MIC}/events", timeout=timeout) as bobs,
        ):
            assert alices.status_code == 200
            assert alices.headers["content-type"].startswith("text/event-stream")
            streams = alice_stream, bob_stream = Stream(alices), Stream(bobs)
            try:
                assert (await alice_stream.next()).payload["state"] == "idle"
                assert (await bob_stream.next()).payload["state"] == "idle"
                stopped = await record(alice, 0.5)
                changes: list[dict[str, Any]] = []
                while not changes or changes[-1]["reason"] != "finish":
                    status = (await alice_stream.next()).payload
                    if status["reason"] != "level":
                        changes.append(status)
                assert [(s["state"], s["reason"]) for s in changes] == [
                    ("armed", "arm"),
                    ("recording", "start"),
                    ("processing", "stop"),
                    ("idle", "finish"),
                ]
                assert changes[-1]["last_recording_id"] == stopped["recording_id"]
                await bob_stream.nothing_more()  # alice's recording is not bob's news
            finally:
                for stream in streams:
                    stream.task.cancel()
                    with suppress(asyncio.CancelledError):
                        await stream.task


async def test_start_is_rate_limited_and_counted_against_the_daily_quota(
    gateway: GatewayFactory, bus_settings: BusSettings, sqlite_url: str, tmp_path: Path
) -> None:
    tokens = await add_users(sqlite_url, "alice", "bob")
    quota = {"per_user": {"alice": 0.5}}
    with device_stack(
        gateway, bus_settings, tmp_path, devices_enabled=True, quota=quota, rate_burst=3
    ) as services:
        async with signed_in(services.gateway, tokens, "alice", "bob") as (alice, bob):
            # It stops itself at its maximum length; every stop after that answers with the
            # recording it stored, and the recording is counted once.
            started = await alice.client.post(MIC, json={"max_duration_s": 0.8})
            assert started.status_code == 201, started.text
            await asyncio.sleep(1.5)
            stops = [(await alice.client.post(f"{MIC}/stop")) for _ in range(3)]
            assert [s.status_code for s in stops] == [201] * 3, [s.text for s in stops]
            assert len({s.json()["recording_id"] for s in stops}) == 1
            stopped = stops[0].json()
            usage = (await alice.client.get("/api/me/usage")).json()
            assert usage["used_s"] == pytest.approx(stopped["duration_s"], abs=0.01)
            assert usage["remaining_s"] == 0
            refused = await alice.client.post(MIC)
            assert_error(refused, 429, "quota_exceeded")
            assert int(refused.headers["Retry-After"]) > 0
            assert (await alice.client.get(MIC)).json()["state"] == "idle"
            # Bob has no quota, but his own bucket (burst 3) runs dry on starts.
            for _ in range(3):
                await bob.client.post(MIC)
                await bob.client.post(f"{MIC}/cancel")
            limited = await bob.client.post(MIC)
            assert_error(limited, 429, "rate_limited")
            assert "Retry-After" in limited.headers
            assert (await bob.client.get(MIC)).status_code == 200  # status is not limited


async def test_a_recording_that_stops_itself_counts_though_nobody_stops_it(
    gateway: GatewayFactory, bus_settings: BusSettings, redis: Redis, sqlite_url: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    """At its maximum length the audio service stores and queues it on its own: the quota
    learns of it from the bus, once, and a late stop does not count it again."""
    tokens = await add_users(sqlite_url, "alice")
    with device_stack(gateway, bus_settings, tmp_path, devices_enabled=True) as services:
        async with signed_in(services.gateway, tokens, "alice") as (alice,):
            started = await alice.client.post(MIC, json={"max_duration_s": 0.8})
            assert started.status_code == 201, started.text
            (stored,) = await published(redis, 1)
            assert stored.duration_s

            async def counted() -> bool:
                usage = (await alice.client.get("/api/me/usage")).json()
                return bool(usage["used_s"])

            await wait_for(counted)
            late = await alice.client.post(f"{MIC}/stop")
            assert late.json()["recording_id"] == stored.recording_id
            usage = (await alice.client.get("/api/me/usage")).json()
    assert usage["used_s"] == pytest.approx(stored.duration_s, abs=0.01)


ROUTES = [
    ("GET", "/api/devices"),
    ("POST", MIC),
    ("POST", f"{MIC}/stop"),
    ("POST", f"{MIC}/cancel"),
    ("GET", MIC),
    ("GET", f"{MIC}/events"),
]


async def test_device_routes_are_off_unless_the_setting_allows_the_caller(
    gateway: GatewayFactory, bus_settings: BusSettings, sqlite_url: str, tmp_path: Path
) -> None:
    # The default on the desk (loopback, no accounts): the single local user may record.
    with device_stack(gateway, bus_settings, tmp_path) as services:
        async with httpx.AsyncClient(base_url=services.gateway, timeout=10) as local:
            listing = await local.get("/api/devices")
            assert listing.status_code == 200, listing.text
            direct = httpx.get(f"{services.audio_url}/devices", timeout=10).json()
            assert listing.json() == direct  # PortAudio's view, as the audio service has it
            assert (await local.post(MIC)).status_code == 201
            assert (await local.post(f"{MIC}/cancel")).json()["state"] == "idle"
    # Switched off on the desk, and the default once there are accounts: 403 everywhere.
    tokens = await add_users(sqlite_url, "alice")
    desk_off = {"database_url": f"sqlite+aiosqlite:///{tmp_path}/no-users.db"}
    cases: list[tuple[dict[str, object], dict[str, str]]] = [
        ({**desk_off, "devices_enabled": False}, {}),
        ({}, {"Authorization": f"Bearer {tokens['alice']}"}),
    ]
    for settings, headers in cases:
        with device_stack(gateway, bus_settings, tmp_path, **settings) as services:
            async with httpx.AsyncClient(
                base_url=services.gateway, timeout=10, headers=headers
            ) as client:
                for method, path in ROUTES:
                    off = await client.request(method, path)
                    assert_error(off, 403, "forbidden")
                    assert "web.devices_enabled" in off.json()["message"]
    # Signed out on a gateway with accounts: 401 first, whatever the setting.
    with gateway(devices_enabled=True) as url:
        async with httpx.AsyncClient(base_url=url, timeout=10) as anonymous:
            for method, path in ROUTES:
                assert_error(await anonymous.request(method, path), 401, "unauthorized")


async def test_an_unreachable_audio_service_is_503_audio_unavailable(
    gateway: GatewayFactory,
) -> None:
    with gateway(audio_service_url="http://127.0.0.1:9") as url:
        async with httpx.AsyncClient(base_url=url, timeout=10) as local:
            for method, path in ROUTES:
                down = await local.request(method, path)
                assert_error(down, 503, "audio_unavailable")
                assert down.json()["retryable"] is True
