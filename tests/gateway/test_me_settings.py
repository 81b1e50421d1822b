"""`/api/me/settings`: each user's own, validated strictly, and resolved into the options of
every recording they make (what the real audio service receives and publishes)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from websockets.asyncio.client import connect

from tests.gateway.conftest import GatewayFactory, add_users, signed_in
from tests.gateway.services import stack, tone_wav
from tests.integration.bus_helpers import wait_for
from whisp_gateway.hub import stream_id_key
from whisp_gateway.user_options import resolve_options
from whisp_shared.codec import decode_entry
from whisp_shared.config import BusSettings
from whisp_shared.dictation import MAX_TERM_CHARS, MAX_VOCABULARY, Replacement
from whisp_shared.events import LiveRecordingStarted, RecordingCompleted
from whisp_shared.options import RecordingOptions
from whisp_shared.streams import LIVE_RECORDINGS, PRIORITY_RECORDINGS, RECORDINGS
from whisp_shared.user_settings import UserSettings

ALICE = {
    "vocabulary": ["Siobhan Okonkwo", "Kestrel Dynamics", "Anjali Raghunathan"],
    "replacements": [
        {"spoken": "new paragraph", "written": "\n\n"},
        {"spoken": "k8s", "written": "Kubernetes"},
    ],
    "default_agent": "helper",
    "language": "en",
    "keep_audio": False,
    "audio_retention_days": 7,
    "transcript_retention_days": 30,
}
DEFAULTS = UserSettings().model_dump()


def assert_invalid(response: httpx.Response, code: str = "invalid_request") -> None:
    assert response.status_code == 422, response.text
    body = response.json()
    assert set(body) == {"code", "message", "retryable"}
    assert body["code"] == code
    assert body["retryable"] is False
    assert body["message"]


async def test_settings_are_per_user_put_replaces_and_patch_changes_only_what_it_names(
    gateway: GatewayFactory, bus_settings: BusSettings, sqlite_url: str, tmp_path: Path
) -> None:
    tokens = await add_users(sqlite_url, "alice", "bob")
    with stack(gateway, bus_settings, tmp_path) as services:
        async with signed_in(services.gateway, tokens, "alice", "bob") as (a, b):
            alice, bob = a.client, b.client
            assert (await alice.get("/api/me/settings")).json() == DEFAULTS

            put = await alice.put("/api/me/settings", json=ALICE)
            assert put.status_code == 200, put.text
            assert put.json() == ALICE
            assert (await alice.get("/api/me/settings")).json() == ALICE
            # Bob's are his own: untouched by alice's, and his changes never reach hers.
            assert (await bob.get("/api/me/settings")).json() == DEFAULTS
            patched = await bob.patch("/api/me/settings", json={"vocabulary": ["Zebra"]})
            assert patched.json() == {**DEFAULTS, "vocabulary": ["Zebra"]}
            assert (await alice.get("/api/me/settings")).json() == ALICE
            # Naming someone else changes nothing.
            spoofed = await bob.put(
                "/api/me/settings",
                json={"language": "fr"},
                headers={"X-Whisp-User": a.id},
                params={"user_id": a.id},
            )
            assert spoofed.json()["language"] == "fr"
            assert (await alice.get("/api/me/settings")).json() == ALICE

            # PATCH: fields present replace (lists whole, null unsets), the rest stay.
            changed = await alice.patch(
                "/api/me/settings",
                json={"vocabulary": ["Kestrel"], "language": None, "audio_retention_days": 3},
            )
            assert changed.status_code == 200, changed.text
            expected = {**ALICE, "vocabulary": ["Kestrel"], "language": None}
            assert changed.json() == {**expected, "audio_retention_days": 3}
            assert (await alice.patch("/api/me/settings", json={})).json() == changed.json()
            # PUT replaces the whole: what it leaves out goes back to the default.
            whole = await alice.put("/api/me/settings", json={"vocabulary": ["Only"]})
            assert whole.json() == {**DEFAULTS, "vocabulary": ["Only"]}
            # Repeated terms are kept once (the first spelling).
            again = await alice.patch("/api/me/settings", json={"vocabulary": ["a", "A", "b"]})
            assert again.json()["vocabulary"] == ["a", "b"]


BAD_BODIES: list[tuple[str, Any]] = [
    ("unknown field", {"vocabulary": [], "colour": "red"}),
    ("too many terms", {"vocabulary": [f"t{n}" for n in range(MAX_VOCABULARY + 1)]}),
    ("too long a term", {"vocabulary": ["x" * (MAX_TERM_CHARS + 1)]}),
    ("empty term", {"vocabulary": ["  "]}),
    ("number as term", {"vocabulary": [42]}),
    ("string as list", {"vocabulary": "Kestrel"}),
    ("number as language", {"language": 5}),
    ("bad language", {"language": "english please"}),
    ("string as bool", {"keep_audio": "false"}),
    ("number as bool", {"keep_audio": 0}),
    ("string as days", {"audio_retention_days": "7"}),
    ("float as days", {"transcript_retention_days": 7.5}),
    ("zero days", {"transcript_retention_days": 0}),
    ("too many days", {"audio_retention_days": 100_000}),
    ("number as written", {"replacements": [{"spoken": "x", "written": 1}]}),
    ("rule without written", {"replacements": [{"spoken": "x"}]}),
    ("rule with extra", {"replacements": [{"spoken": "x", "written": "y", "z": 1}]}),
    (
        "two rules one phrase",
        {"replacements": [{"spoken": "K8s", "written": "a"}, {"spoken": "k8s", "written": "b"}]},
    ),
    ("bad agent name", {"default_agent": "../etc"}),
    ("not an object", ["vocabulary"]),
]


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
async def test_bad_settings_are_refused_with_the_error_body(
    gateway: GatewayFactory, sqlite_url: str, method: str
) -> None:
    tokens = await add_users(sqlite_url, "alice")
    with gateway() as url:
        async with signed_in(url, tokens, "alice") as (alice,):
            await alice.client.put("/api/me/settings", json={"vocabulary": ["Kept"]})
            for why, body in BAD_BODIES:
                response = await alice.client.request(method, "/api/me/settings", json=body)
                assert response.status_code == 422, (why, response.text)
                assert_invalid(response)
            if method == "PATCH":  # null for a list or a switch is not "unset"
                for field in ("vocabulary", "replacements", "keep_audio"):
                    assert_invalid(await alice.client.patch("/api/me/settings", json={field: None}))
            not_json = await alice.client.request(
                method,
                "/api/me/settings",
                content=b"{nope",
                headers={"Content-Type": "application/json"},
            )
            assert not_json.status_code in (400, 422)
            assert (await alice.client.get("/api/me/settings")).json()["vocabulary"] == ["Kept"]


async def test_default_agent_must_be_one_the_user_may_run(
    gateway: GatewayFactory, bus_settings: BusSettings, sqlite_url: str, tmp_path: Path
) -> None:
    tokens = await add_users(sqlite_url, "alice")
    with stack(gateway, bus_settings, tmp_path) as services:
        async with signed_in(services.gateway, tokens, "alice") as (alice,):
            client = alice.client
            for name in ("helper", "tidy"):  # an agent, a pipeline
                ok = await client.patch("/api/me/settings", json={"default_agent": name})
                assert ok.status_code == 200, ok.text
            unknown = await client.patch("/api/me/settings", json={"default_agent": "nobody"})
            assert_invalid(unknown, "unknown_agent")
            assert "nobody" in unknown.json()["message"]
            assert_invalid(
                await client.put("/api/me/settings", json={"default_agent": "nobody"}),
                "unknown_agent",
            )
            assert (await client.get("/api/me/settings")).json()["default_agent"] == "tidy"
            cleared = await client.patch("/api/me/settings", json={"default_agent": None})
            assert cleared.json()["default_agent"] is None
    # The agent service away: a new default agent cannot be checked (503, retry), while
    # settings that leave it alone are still saved.
    with gateway(agent_service_url="http://127.0.0.1:9") as url:
        async with signed_in(url, tokens, "alice") as (alice,):
            away = await alice.client.patch("/api/me/settings", json={"default_agent": "helper"})
            assert away.status_code == 503
            assert away.json()["code"] == "agent_unavailable"
            saved = await alice.client.patch("/api/me/settings", json={"language": "de"})
            assert saved.status_code == 200


async def test_preview_applies_saved_or_draft_replacements(
    gateway: GatewayFactory, sqlite_url: str
) -> None:
    tokens = await add_users(sqlite_url, "alice", "bob")
    with gateway() as url:
        async with signed_in(url, tokens, "alice", "bob") as (a, b):
            await a.client.put("/api/me/settings", json=ALICE | {"default_agent": None})
            text = "we run k8s. New paragraph, next"
            saved = await a.client.post("/api/me/settings/preview", json={"text": text})
            assert saved.status_code == 200, saved.text
            assert "Kubernetes" in saved.json()["text"]
            assert "\n\n" in saved.json()["text"]
            draft = await a.client.post(
                "/api/me/settings/preview",
                json={"text": text, "replacements": [{"spoken": "next", "written": "NEXT"}]},
            )
            assert draft.json()["text"] == "we run k8s. New paragraph, NEXT"
            # Bob has no replacements: his preview is his text as it is.
            assert (
                await b.client.post("/api/me/settings/preview", json={"text": text})
            ).json() == {"text": text}
            assert (await a.client.get("/api/me/settings")).json()["replacements"] == ALICE[
                "replacements"
            ]  # a draft is never stored
            for bad in ({"text": 5}, {"text": "x" * 5001}, {"text": "x", "more": 1}, {}):
                assert_invalid(await a.client.post("/api/me/settings/preview", json=bad))


async def published_options(
    redis: Redis, streams: tuple[str, ...], count: int
) -> list[RecordingOptions]:
    """The options of what the audio service published on `streams`, in publishing order
    (stream ids are times, so the lanes merge into one order)."""

    async def entries() -> list[tuple[bytes, dict[bytes, bytes]]]:
        found = [entry for stream in streams for entry in await redis.xrange(stream)]
        return sorted(found, key=lambda entry: stream_id_key(entry[0].decode()))

    async def arrived() -> bool:
        return len(await entries()) >= count

    await wait_for(arrived)
    events = [decode_entry(fields) for _, fields in await entries()]
    assert all(isinstance(e, RecordingCompleted | LiveRecordingStarted) for e in events)
    return [e.options() for e in events]  # type: ignore[union-attr]


async def test_uploads_carry_the_owners_settings_to_the_audio_service(
    gateway: GatewayFactory,
    bus_settings: BusSettings,
    redis: Redis,
    sqlite_url: str,
    tmp_path: Path,
) -> None:
    """Both upload doors: the options the audio service publishes are the owner's settings
    plus the request's own fields; bob's recordings carry none of alice's words."""
    tokens = await add_users(sqlite_url, "alice", "bob")
    wav = tone_wav(tmp_path / "tone.wav")
    with stack(gateway, bus_settings, tmp_path, wait_timeout_s=0.5) as services:
        async with signed_in(services.gateway, tokens, "alice", "bob") as (a, b):
            await a.client.put("/api/me/settings", json=ALICE)
            files = {"file": ("clip.wav", wav, "audio/wav")}
            first = await a.client.post(
                "/api/recordings",
                files=files,
                data={
                    "prompt": "Meeting notes.",
                    "vocabulary": ["Quill", "kestrel dynamics"],
                    # A form repeats the field with a JSON object each (`as_form`); the
                    # request's rule for a phrase the settings have wins.
                    "replacements": [json.dumps({"spoken": "K8S", "written": "kube"})],
                },
            )
            assert first.status_code == 202, first.text
            for bad in ("k8s=kube", json.dumps({"spoken": "x"}), json.dumps(["x", "y"])):
                refused = await a.client.post(
                    "/api/recordings", files=files, data={"replacements": [bad]}
                )
                assert_invalid(refused)
            second = await a.client.post(
                "/api/recordings", files=files, data={"language": "de", "agent_id": "helper"}
            )
            assert second.status_code == 202, second.text
            # /v1 (OpenAI's form): waits for a worker that is not running here (504), but
            # the recording went to the audio service with the same resolution.
            openai = await a.client.post(
                "/v1/audio/transcriptions", files=files, data={"model": "whisper-1"}
            )
            assert openai.status_code == 504, openai.text
            theirs = await b.client.post("/api/recordings", files=files)
            assert theirs.status_code == 202
        mine_1, mine_2, mine_3, bobs = await published_options(
            redis, (RECORDINGS, PRIORITY_RECORDINGS), 4
        )

    rules = [tuple(r.values()) for r in ALICE["replacements"]]
    # The request's prompt stays; its terms join the settings' (each once).
    assert mine_1.prompt == "Meeting notes."
    assert mine_1.vocabulary == [*ALICE["vocabulary"], "Quill"]
    assert [(r.spoken, r.written) for r in mine_1.replacements] == [rules[0], ("K8S", "kube")]
    assert [(r.spoken, r.written) for r in mine_3.replacements] == rules
    assert mine_1.keep_audio is False
    assert mine_1.language == "en"
    # A language in the request wins; an agent only when the request asks for one.
    assert (mine_2.language, mine_2.agent_id) == ("de", "helper")
    assert mine_1.agent_id is None and mine_3.agent_id is None  # default_agent is not a route
    assert mine_3.vocabulary == ALICE["vocabulary"]
    assert mine_3.language == "en"
    assert bobs == RecordingOptions()


async def test_the_realtime_socket_reads_the_settings_for_each_utterance(
    gateway: GatewayFactory,
    bus_settings: BusSettings,
    redis: Redis,
    sqlite_url: str,
    tmp_path: Path,
) -> None:
    tokens = await add_users(sqlite_url, "alice")
    pcm = base64.b64encode(b"\x10\x00" * 2400).decode()
    with stack(gateway, bus_settings, tmp_path) as services:
        async with signed_in(services.gateway, tokens, "alice") as (alice,):
            await alice.client.put("/api/me/settings", json=ALICE)
            ws_url = services.gateway.replace("http", "ws") + "/v1/realtime?intent=transcription"
            headers = {"Authorization": f"Bearer {tokens['alice']}"}
            async with connect(ws_url, additional_headers=headers) as ws:
                assert json.loads(await ws.recv())["type"] == "session.created"
                for turn in range(2):
                    await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": pcm}))
                    await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
                    while json.loads(await ws.recv())["type"] != "input_audio_buffer.committed":
                        pass
                    if turn == 0:  # saved while the socket stays open: the next item has it
                        await alice.client.patch(
                            "/api/me/settings", json={"vocabulary": ["Later"], "keep_audio": True}
                        )
            first, second = await published_options(redis, (LIVE_RECORDINGS,), 2)
    assert first.vocabulary == ALICE["vocabulary"]
    assert (first.keep_audio, first.language) == (False, "en")
    assert len(first.replacements) == 2
    assert second.vocabulary == ["Later"]
    assert second.keep_audio is True


def test_a_request_adds_to_the_settings_and_may_only_keep_less_audio() -> None:
    settings = UserSettings(
        vocabulary=["Anjali", "Kestrel"],
        replacements=[Replacement(spoken="k8s", written="Kubernetes")],
        language="en",
    )
    request = RecordingOptions(
        vocabulary=["kestrel", "Quill"],
        replacements=[Replacement(spoken="K8S", written="kube")],
        keep_audio=False,
        prompt="Standup.",
    )
    out = resolve_options(settings, request)
    assert out.vocabulary == ["Anjali", "Kestrel", "Quill"]
    assert [(r.spoken, r.written) for r in out.replacements] == [("K8S", "kube")]
    assert (out.keep_audio, out.language, out.prompt) == (False, "en", "Standup.")
    assert (
        resolve_options(
            settings.model_copy(update={"keep_audio": False}), RecordingOptions()
        ).keep_audio
        is False
    )
    full = UserSettings(vocabulary=[f"t{n}" for n in range(MAX_VOCABULARY)])
    capped = resolve_options(full, RecordingOptions(vocabulary=["extra"]))
    assert capped.vocabulary == full.vocabulary  # the owner's own words first, within the bound
