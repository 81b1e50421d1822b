"""Daily audio quotas: every door the gateway takes audio through (uploads, `/v1`, the
Realtime socket, Wyoming) counts the seconds it accepted on one Redis counter per user per
UTC day, and refuses once they reached the user's quota (429 `quota_exceeded`, Retry-After
to the next UTC midnight) — against the real gateway, audio service and Redis."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from redis.asyncio import Redis
from websockets.asyncio.client import ClientConnection, connect
from wyoming.asr import Transcribe
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.event import Event

from tests.gateway.conftest import GatewayFactory, add_users, signed_in
from tests.gateway.services import stack, tone_wav
from tests.gateway.test_metrics import sample
from whisp_cli.desk.gateway import error_from
from whisp_cli.redis_server import free_port
from whisp_gateway.quota import GRACE_S, Quota, refusal
from whisp_gateway.settings import GatewaySettings, QuotaSettings
from whisp_shared.config import BusSettings
from whisp_shared.streams import LIVE_RECORDINGS

REFUSALS = "whisp_gateway_quota_refusals_total"


def to_midnight() -> float:
    now = datetime.now(UTC)
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (midnight - now).total_seconds()


def assert_retry_after(response: httpx.Response) -> None:
    """Whole seconds to the next UTC midnight (within a few seconds of ours)."""
    wait = int(response.headers["Retry-After"])
    assert to_midnight() - 5 <= wait <= to_midnight() + 1, (wait, to_midnight())
    assert response.headers["x-should-retry"] == "false"


def quota_message(used: str, limit: str) -> re.Pattern[str]:
    return re.compile(
        rf"You have used {re.escape(used)} s of your {re.escape(limit)} s of audio today; "
        r"the quota resets at 00:00 UTC, in (\d+ h( \d+ min)?|\d+ min|\d+ s)\."
    )


KEYS = ("", ":counted")
"""A user's keys of a day: the seconds, and the recording ids already counted."""


async def quota_keys(redis: Redis) -> dict[str, int]:
    """Every quota counter in Redis, with its TTL."""
    return {k.decode(): await redis.ttl(k) async for k in redis.scan_iter(match="whisp:quota:*")}


async def test_uploads_count_until_the_quota_then_429_with_retry_after_to_midnight(
    gateway: GatewayFactory,
    bus_settings: BusSettings,
    redis: Redis,
    sqlite_url: str,
    tmp_path: Path,
) -> None:
    tokens = await add_users(sqlite_url, "alice", "bob", "carol", "dave")
    quota = {"audio_seconds_per_day": 2, "per_user": {"carol": 5, "dave": None}}
    one, long, three = (tone_wav(tmp_path / f"{s}.wav", s) for s in (1.0, 1.5, 3.0))

    def clip(data: bytes) -> dict[str, Any]:
        return {"file": ("clip.wav", data, "audio/wav")}

    with stack(gateway, bus_settings, tmp_path, quota=quota, wait_timeout_s=0.3) as services:
        async with signed_in(services.gateway, tokens, "alice", "bob", "carol", "dave") as users:
            alice, bob, carol, dave = (u.client for u in users)
            refused_before = sample((await alice.get("/metrics")).text, REFUSALS)

            async def used(client: httpx.AsyncClient) -> dict[str, Any]:
                response = await client.get("/api/me/usage")
                assert response.status_code == 200, response.text
                return dict(response.json())

            usage = await used(alice)
            midnight = datetime.now(UTC).date() + timedelta(days=1)
            assert usage == {
                "day": datetime.now(UTC).date().isoformat(),
                "used_s": 0.0,
                "quota_s": 2.0,
                "remaining_s": 2.0,
                "resets_at": f"{midnight.isoformat()}T00:00:00Z",
            }
            first = await alice.post("/api/recordings", files=clip(one))
            assert first.status_code == 202, first.text
            assert first.json()["duration_s"] == pytest.approx(1.0)
            assert (await used(alice))["used_s"] == pytest.approx(1.0)
            # Under the quota anything is taken, even a clip that crosses it...
            crossing = await alice.post("/api/recordings", files=clip(long))
            assert crossing.status_code == 202, crossing.text
            usage = await used(alice)
            assert (usage["used_s"], usage["remaining_s"]) == (2.5, 0.0)
            # ...and the next one is refused, on both upload doors.
            refused = await alice.post("/api/recordings", files=clip(one))
            assert refused.status_code == 429, refused.text
            assert_retry_after(refused)
            body = refused.json()
            assert set(body) == {"code", "message", "retryable"}
            assert (body["code"], body["retryable"]) == ("quota_exceeded", False)
            assert quota_message("2.5", "2").fullmatch(body["message"]), body["message"]
            shown = str(error_from(refused))  # what `whisp record` prints for it
            assert shown == f"your daily audio quota is used up: {body['message']}"
            openai = await alice.post("/v1/audio/transcriptions", files=clip(one))
            assert openai.status_code == 429, openai.text
            assert_retry_after(openai)
            error = openai.json()["error"]
            assert (error["code"], error["type"]) == ("quota_exceeded", "invalid_request_error")
            assert error["message"] == body["message"]
            assert (await used(alice))["used_s"] == 2.5  # refusals count nothing

            # Bob is on his own counter; /v1 counts too (accepted, then 504: no worker).
            assert (await bob.post("/api/recordings", files=clip(one))).status_code == 202
            late = await bob.post("/v1/audio/transcriptions", files=clip(one))
            assert late.status_code == 504, late.text
            assert (await used(bob))["remaining_s"] == 0.0
            assert (await bob.post("/api/recordings", files=clip(one))).status_code == 429

            # Carol's own quota is larger; dave's is none at all.
            for data in (three, one, one):
                assert (await carol.post("/api/recordings", files=clip(data))).status_code == 202
            over = await carol.post("/api/recordings", files=clip(one))
            assert over.status_code == 429
            assert quota_message("5", "5").fullmatch(over.json()["message"])
            for _ in range(3):
                assert (await dave.post("/api/recordings", files=clip(three))).status_code == 202
            usage = await used(dave)
            assert (usage["used_s"], usage["quota_s"], usage["remaining_s"]) == (9.0, None, None)

            refused_after = sample((await alice.get("/metrics")).text, REFUSALS)
            assert refused_after == refused_before + 4

            # One counter per user for today, and the ids it counted (each recording once,
            # whether the request or the bus reports it first), expiring after the day.
            keys = await quota_keys(redis)
            today = datetime.now(UTC).date().isoformat()

            def day_keys(of: list[Any]) -> list[str]:
                return sorted(f"whisp:quota:{today}:{u.id}{end}" for u in of for end in KEYS)

            assert sorted(keys) == day_keys(users)
            for ttl in keys.values():
                assert to_midnight() - 2 <= ttl <= to_midnight() + GRACE_S + 1

            # Deleting everything of alice's takes her counter (only hers) with it.
            gone = await alice.delete("/api/me/data", params={"confirm": "alice"})
            assert gone.status_code == 200, gone.text
            assert gone.json()["redis"]["keys"] >= 1
            assert sorted(await quota_keys(redis)) == day_keys(users[1:])
            assert (await used(alice))["used_s"] == 0.0
            assert (await alice.post("/api/recordings", files=clip(one))).status_code == 202
            assert (await used(carol))["used_s"] == 5.0


def pcm_event(seconds: float, rate: int = 24_000, event_id: str | None = None) -> str:
    audio = base64.b64encode(b"\x10\x00" * int(seconds * rate)).decode()
    event = {"type": "input_audio_buffer.append", "audio": audio}
    return json.dumps({**event, "event_id": event_id} if event_id else event)


async def next_event(ws: ClientConnection, *skip: str) -> dict[str, Any]:
    while (event := json.loads(await ws.recv()))["type"] in skip:
        pass
    return dict(event)


async def wyoming_request(uri: str, seconds: float) -> list[Event]:
    """One transcription of `seconds` of 16 kHz audio; every event until the server closes."""
    seen: list[Event] = []
    async with AsyncTcpClient.from_uri(uri) as client:
        await client.write_event(Transcribe(language="en").event())
        await client.write_event(AudioStart(16_000, 2, 1).event())
        pcm = b"\x10\x00" * int(seconds * 16_000)
        for start in range(0, len(pcm), 4096):
            await client.write_event(AudioChunk(16_000, 2, 1, pcm[start : start + 4096]).event())
        await client.write_event(AudioStop().event())
        while (event := await client.read_event()) is not None:
            seen.append(event)
    return seen


async def test_live_utterances_count_and_are_refused_once_over_the_quota(
    gateway: GatewayFactory,
    bus_settings: BusSettings,
    redis: Redis,
    sqlite_url: str,
    tmp_path: Path,
) -> None:
    """The Realtime socket and Wyoming share the uploads' counter: each committed utterance
    adds its samples' seconds; once over, the next utterance is refused with each
    protocol's own `error` event (a held key: at its first append and at its commit)."""
    tokens = await add_users(sqlite_url, "alice")
    wyoming = {"port": free_port(), "user": "alice", "streaming": False}
    settings = {"quota": {"audio_seconds_per_day": 1}, "wait_timeout_s": 0.3, "wyoming": wyoming}
    with stack(gateway, bus_settings, tmp_path, **settings) as services:
        uri = f"tcp://127.0.0.1:{services.gateway.app.state.wyoming.port}"
        ws_url = services.gateway.replace("http", "ws") + "/v1/realtime?intent=transcription"
        async with signed_in(services.gateway, tokens, "alice") as (alice,):

            async def used() -> float:
                return float((await alice.client.get("/api/me/usage")).json()["used_s"])

            # Wyoming: accepted and counted at its commit (no worker here: it times out).
            (timeout,) = await wyoming_request(uri, 0.5)
            assert (timeout.type, timeout.data["code"]) == ("error", "transcription_timeout")
            assert await used() == pytest.approx(0.5, abs=0.01)

            headers = {"Authorization": f"Bearer {tokens['alice']}"}
            async with connect(ws_url, additional_headers=headers) as ws:
                assert (await next_event(ws))["type"] == "session.created"
                await ws.send(pcm_event(0.6))  # under the quota: taken, crossing it
                await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
                committed = await next_event(ws, "session.updated")
                assert committed["type"] == "input_audio_buffer.committed", committed
                assert await used() == pytest.approx(1.1, abs=0.01)

                await ws.send(pcm_event(0.2, event_id="append_1"))
                error = (await next_event(ws))["error"]
                assert (error["code"], error["event_id"]) == ("quota_exceeded", "append_1")
                assert error["type"] == "invalid_request_error"
                assert quota_message("1.1", "1").fullmatch(error["message"]), error
                for _ in range(3):  # the rest of the held key: dropped without a word
                    await ws.send(pcm_event(0.2))
                await ws.send(json.dumps({"type": "input_audio_buffer.commit", "event_id": "c1"}))
                error = (await next_event(ws))["error"]
                assert (error["code"], error["event_id"]) == ("quota_exceeded", "c1")
                await ws.send(pcm_event(0.2, event_id="append_2"))  # the next press: refused
                assert (await next_event(ws))["error"]["event_id"] == "append_2"
                await ws.send(json.dumps({"type": "input_audio_buffer.clear"}))
                assert (await next_event(ws))["type"] == "input_audio_buffer.cleared"

            # Wyoming: refused at the first audio, and the connection ends at audio-stop.
            (refused,) = await wyoming_request(uri, 0.5)
            assert (refused.type, refused.data["code"]) == ("error", "quota_exceeded")
            assert quota_message("1.1", "1").fullmatch(refused.data["text"])

            assert await used() == pytest.approx(1.1, abs=0.01)
            assert await redis.xlen(LIVE_RECORDINGS) == 2  # no live recording was opened


async def test_without_a_quota_everything_is_accepted_and_still_counted(
    gateway: GatewayFactory,
    bus_settings: BusSettings,
    sqlite_url: str,
    tmp_path: Path,
) -> None:
    tokens = await add_users(sqlite_url, "alice")
    wav = tone_wav(tmp_path / "two.wav", 2.0)
    with stack(gateway, bus_settings, tmp_path) as services:
        async with signed_in(services.gateway, tokens, "alice") as (alice,):
            for _ in range(4):
                files = {"file": ("clip.wav", wav, "audio/wav")}
                assert (await alice.client.post("/api/recordings", files=files)).status_code == 202
            usage = (await alice.client.get("/api/me/usage")).json()
    assert (usage["used_s"], usage["quota_s"], usage["remaining_s"]) == (8.0, None, None)


async def test_a_recording_counts_once_on_its_own_day_though_reported_after_midnight(
    redis: Redis,
) -> None:
    """The upload counts it as it is answered; the bus reports it again, maybe after
    midnight (a backlog): found on the day it was counted, not counted on the next."""
    # Today's (the keys expire an hour after the day ends: a fixed date would be gone).
    late_evening = datetime.combine(datetime.now(UTC).date(), time(23, 59, 59, 500_000), UTC)
    clock = [late_evening]
    quota = Quota(redis, QuotaSettings(), clock=lambda: clock[0])
    assert await quota.add("alice", 2.0, "r1") == 2.0
    clock[0] = late_evening + timedelta(seconds=1)  # the next UTC day
    assert await quota.add("alice", 2.0, "r1", at=late_evening) == 2.0
    assert await quota.used("alice") == 0.0
    assert await quota.used("alice", late_evening) == 2.0
    assert await quota.add("alice", 1.0, "r2") == 1.0  # today's own recording still counts


def test_the_refusal_says_what_was_used_and_waits_to_the_next_utc_midnight() -> None:
    late = datetime(2026, 3, 14, 23, 59, 30, tzinfo=UTC)
    error = refusal(3600, 3600, late)
    assert (error.status, error.code, error.retryable) == (429, "quota_exceeded", False)
    assert error.headers()["Retry-After"] == "30"
    assert error.message == (
        "You have used 3600 s of your 3600 s of audio today; "
        "the quota resets at 00:00 UTC, in 30 s."
    )
    morning = datetime(2026, 3, 14, 18, 47, 59, 500_000, tzinfo=UTC)
    assert refusal(12.25, 10, morning).headers()["Retry-After"] == str(5 * 3600 + 12 * 60 + 1)
    assert refusal(12.25, 10, morning).message.endswith("12.2 s of your 10 s of audio today; "
                                                        "the quota resets at 00:00 UTC, "
                                                        "in 5 h 12 min.")  # fmt: skip
    # Another timezone's clock: still the UTC day.
    east = datetime(2026, 3, 15, 6, 0, tzinfo=timezone(timedelta(hours=5)))
    assert refusal(1, 1, east).headers()["Retry-After"] == str(23 * 3600)


def test_quota_settings_by_name_and_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("web:\n  quota:\n    audio_seconds_per_day: 600\n")
    monkeypatch.setenv("WHISP_CONFIG", str(config))
    monkeypatch.setenv("WHISP_WEB__QUOTA__PER_USER", '{"ci-bot": null, "alice": 7200}')
    quota = GatewaySettings().quota
    assert [quota.limit_for(n) for n in ("bob", "alice", "ci-bot")] == [600, 7200, None]
    assert QuotaSettings().limit_for("bob") is None  # the default: unlimited
    for bad in ({"audio_seconds_per_day": -1}, {"per_user": {"a": -5}}, {"seconds": 5}):
        with pytest.raises(ValidationError):
            QuotaSettings.model_validate(bad)
