"""A corpus of bad input against every public endpoint, and broken agent YAML at the loader.

Against a real multi-user stack (Redis, audio service, agent service with a local stand-in
model, gateway; no transcription worker, so whatever the audio service accepted would stay
visible on the streams): malformed and wrongly typed JSON, huge and non-UTF-8 text for the
agents, path traversal in every id, oversized query parameters and headers, corrupt,
truncated, zero-length, too large and too long audio through both upload routes, broken
multipart forms. Each must get a clear 4xx with a stable code from `ErrorCode` (in OpenAI's
shape under `/v1`), never a 5xx; nothing may be published on any stream, no audio stored,
and no file written outside the data folder.

The agent registry (`whisp_agent.registry`, the loader the agent service and `whisp agents
validate` use) gets broken files one at a time (each must be reported as a problem of that
file, not crash the loader), and YAML bombs (aliases expanded into billions of nodes, and a
tiny file whose handoff graph has millions of cycles) through `whisp agents validate`, which
must answer "invalid" within seconds and without eating memory.

Decided here: a WAV or MP3 cut in the middle of its samples is not bad input. It still holds
audio (a browser's recording stopped mid-chunk looks the same) and the audio service keeps
what decodes, so only files cut inside their headers are in the corpus.
"""

from __future__ import annotations

import http.client
import io
import math
import os
import random
import struct
import subprocess
import sys
import time
import uuid
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import redis

from tests.reliability.test_auth_every_route import Stack, multi_user_stack
from tests.support.formats import FORMATS, encode
from whisp_agent.registry import RegistryError, load_registry
from whisp_agent.settings import AgentSettings
from whisp_agent.tools import builtin_tools
from whisp_shared.codes import ErrorCode
from whisp_shared.http_errors import ErrorBody, OpenAIErrorBody, OpenAIErrorDetail
from whisp_shared.streams import PRIORITY_RECORDINGS

MARK = f"whisp-escape-{uuid.uuid4().hex[:8]}"
"""In every traversal attempt: no file or folder with this name may appear anywhere."""
MAX_UPLOAD = 1 << 20
MAX_DURATION_S = 5
CODES = {code.value for code in ErrorCode}


# --- the stack ------------------------------------------------------------------------------


@dataclass
class Rig:
    stack: Stack
    redis: redis.Redis
    outside_data: set[Path]
    """Files under the services' working folder, outside data/, logs/ and redis/, at start."""

    def streams(self) -> dict[str, int]:
        """Every stream in Redis and its length."""
        found = {}
        for key in self.redis.scan_iter(match="*", count=1000):
            if self.redis.type(key) == b"stream":
                found[key.decode()] = int(self.redis.xlen(key))
        return found


def files_outside_data(root: Path) -> set[Path]:
    keep = {"data", "logs", "redis"}
    return {p for p in root.rglob("*") if p.is_file() and p.relative_to(root).parts[0] not in keep}


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    root = tmp_path_factory.mktemp("bad-input-stack")
    with multi_user_stack(
        root,
        users=("alice",),
        gateway_env={
            "WHISP_WEB__MAX_UPLOAD_BYTES": str(MAX_UPLOAD),
            "WHISP_WEB__WAIT_TIMEOUT_S": "2",
        },
        config=f"audio:\n  max_duration_s: {MAX_DURATION_S}\n",
    ) as stack:
        client = redis.Redis.from_url(stack.redis_url, socket_timeout=10)
        try:
            yield Rig(stack, client, files_outside_data(root))
        finally:
            client.close()


def assert_refused(response: httpx.Response, status: int, code: str) -> None:
    """`status` and `code` in the shared error body (OpenAI's shape under /v1)."""
    where = f"{response.request.method} {response.request.url.path}"
    assert response.status_code == status, (where, response.status_code, response.text[:300])
    assert response.headers.get("content-type", "").startswith("application/json"), where
    body: ErrorBody | OpenAIErrorDetail
    if response.request.url.path.startswith("/v1/"):
        body = OpenAIErrorBody.model_validate_json(response.content).error
    else:
        body = ErrorBody.model_validate_json(response.content)
    assert body.code in CODES
    assert (response.status_code, body.code) == (status, code), (where, response.text[:300])
    assert body.message


@pytest.fixture
def alice(rig: Rig) -> Iterator[httpx.Client]:
    """Alice's client; after the test, no stream grew and nothing left the data folder."""
    before = rig.streams()
    with httpx.Client(
        base_url=rig.stack.gateway, headers=rig.stack.headers("alice"), timeout=60
    ) as client:
        yield client
    assert rig.streams() == before, "something was published"
    assert files_outside_data(rig.stack.root) == rig.outside_data
    assert not list((rig.stack.data_dir / "audio").rglob("*.wav")), "audio was stored"


# --- audio ------------------------------------------------------------------------------------


def wav(seconds: float, rate: int = 16_000) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        n = int(seconds * rate)
        w.writeframes(struct.pack(f"<{n}h", *(int(3000 * math.sin(i / 9)) for i in range(n))))
    return out.getvalue()


NOISE = random.Random(20261201).randbytes(4096)
GOOD = wav(1.0)

AUDIO: dict[str, tuple[bytes, str, int, str]] = {
    # name: (bytes, declared content type, status, code)
    "zero-length": (b"", "audio/wav", 422, "empty_upload"),
    "noise-as-wav": (NOISE, "audio/wav", 415, "unsupported_media_type"),
    "noise-as-octets": (NOISE, "application/octet-stream", 415, "unsupported_media_type"),
    "text-as-text": (b"hello, this is not audio", "text/plain", 415, "unsupported_media_type"),
    "png-as-wav": (b"\x89PNG\r\n\x1a\n" + NOISE[:500], "audio/wav", 415, "unsupported_media_type"),
    "wav-header-only": (GOOD[:44], "audio/wav", 422, "undecodable_audio"),
    "wav-cut-in-header": (GOOD[:20], "audio/wav", 422, "undecodable_audio"),
    "wav-rate-zero": (GOOD[:24] + struct.pack("<I", 0) + GOOD[28:], "audio/wav", 422,
                      "undecodable_audio"),
    "wav-zero-channels": (GOOD[:22] + struct.pack("<H", 0) + GOOD[24:], "audio/wav", 422,
                          "undecodable_audio"),
    "mp3-frame-then-noise": (b"\xff\xfb\x90\x64" + NOISE[:2000], "audio/mpeg", 422,
                             "undecodable_audio"),
    "id3-then-noise": (b"ID3\x04\x00\x00\x00\x00\x00\x00" + NOISE[:2000], "audio/mpeg", 422,
                       "undecodable_audio"),
    "ogg-page-then-noise": (b"OggS\x00\x02" + NOISE[:2000], "audio/ogg", 422,
                            "undecodable_audio"),
    "ebml-then-noise": (b"\x1aE\xdf\xa3" + NOISE[:2000], "audio/webm", 422, "undecodable_audio"),
    "flac-magic-then-noise": (b"fLaC" + NOISE[:2000], "audio/flac", 422, "undecodable_audio"),
    "larger-than-the-limit": (b"RIFF" + bytes(MAX_UPLOAD), "audio/wav", 413, "upload_too_large"),
    "longer-than-the-limit": (wav(MAX_DURATION_S + 1.5), "audio/wav", 413, "audio_too_long"),
}  # fmt: skip


@pytest.fixture(scope="module")
def encoded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[bytes, str]]:
    """Real files of every container the audio service takes (PyAV's own FFmpeg)."""
    folder = tmp_path_factory.mktemp("encoded")
    source = folder / "source.wav"
    source.write_bytes(GOOD)
    return {
        name: (encode(source, name, folder).read_bytes(), spec.content_type)
        for name, spec in FORMATS.items()
    }


UPLOAD_ROUTES = ("/api/recordings", "/v1/audio/transcriptions")


def upload(client: httpx.Client, route: str, data: bytes, content_type: str, **form: str) -> Any:
    fields = {"model": "whisper-1", **form} if route.startswith("/v1/") else form
    return client.post(route, files={"file": ("clip", data, content_type)}, data=fields)


@pytest.mark.e2e
@pytest.mark.parametrize("route", UPLOAD_ROUTES)
@pytest.mark.parametrize("name", list(AUDIO))
def test_bad_audio_gets_a_4xx_and_nothing_is_published(
    alice: httpx.Client, route: str, name: str
) -> None:
    data, content_type, status, code = AUDIO[name]
    assert_refused(upload(alice, route, data, content_type), status, code)


@pytest.mark.e2e
@pytest.mark.parametrize("route", UPLOAD_ROUTES)
@pytest.mark.parametrize("fmt", list(FORMATS))
def test_real_audio_cut_inside_its_header_is_undecodable(
    alice: httpx.Client, encoded: dict[str, tuple[bytes, str]], route: str, fmt: str
) -> None:
    data, content_type = encoded[fmt]
    for cut in (16, 64):
        response = upload(alice, route, data[:cut], content_type)
        assert_refused(response, 422, "undecodable_audio")


FORM_CASES: dict[str, tuple[dict[str, str], str, int, str]] = {
    # name: (form fields, route, status, code)
    "agent-id-traversal": ({"agent_id": f"../../{MARK}"}, "/api/recordings", 422,
                           "invalid_request"),
    "session-id-traversal": ({"session_id": f"../../../tmp/{MARK}"}, "/api/recordings", 422,
                             "invalid_request"),
    "language-oversized": ({"language": "x" * 5000}, "/api/recordings", 422, "invalid_request"),
    "prompt-oversized": ({"prompt": "x" * 50_000}, "/api/recordings", 422, "invalid_request"),
    "word-timestamps-not-a-bool": ({"word_timestamps": "maybe"}, "/api/recordings", 422,
                                   "invalid_request"),
    "v1-format-unknown": ({"response_format": "exe"}, "/v1/audio/transcriptions", 422,
                          "invalid_request"),
    "v1-temperature-out-of-range": ({"temperature": "5"}, "/v1/audio/transcriptions", 422,
                                    "invalid_request"),
    "v1-granularity-unknown": ({"timestamp_granularities[]": "x"}, "/v1/audio/transcriptions",
                               422, "invalid_request"),
    "v1-language-not-a-code": ({"language": "english!!"}, "/v1/audio/transcriptions", 422,
                               "invalid_request"),
    "v1-model-oversized": ({"model": "x" * 5000}, "/v1/audio/transcriptions", 422,
                           "invalid_request"),
    "v1-prompt-oversized": ({"prompt": "x" * 50_000}, "/v1/audio/transcriptions", 422,
                            "invalid_request"),
}  # fmt: skip


@pytest.mark.e2e
@pytest.mark.parametrize("name", list(FORM_CASES))
def test_bad_form_fields_beside_good_audio(alice: httpx.Client, name: str) -> None:
    """Valid audio, one bad field: refused before anything is stored or published."""
    form, route, status, code = FORM_CASES[name]
    assert_refused(upload(alice, route, GOOD, "audio/wav", **form), status, code)


MULTIPART = "multipart/form-data"
BROKEN_FORMS: dict[str, tuple[dict[str, Any], int, str]] = {
    "no-file": ({"data": {"language": "en"}}, 422, "invalid_request"),
    "file-as-a-text-field": ({"data": {"file": "not a file"}}, 422, "invalid_request"),
    "json-instead-of-a-form": ({"json": {"file": "x"}}, 422, "invalid_request"),
    "no-boundary": ({"content": b"garbage", "headers": {"Content-Type": MULTIPART}}, 400,
                    "bad_request"),
    "garbage-body": ({"content": b"garbage",
                      "headers": {"Content-Type": f"{MULTIPART}; boundary=xyz"}}, 400,
                     "bad_request"),
    "cut-short": ({"content": b'--xyz\r\nContent-Disposition: form-data; name="file"; '
                              b'filename="a.wav"\r\n\r\nRIFF',
                   "headers": {"Content-Type": f"{MULTIPART}; boundary=xyz"}}, 422,
                  "invalid_request"),
}  # fmt: skip


@pytest.mark.e2e
@pytest.mark.parametrize("route", UPLOAD_ROUTES)
@pytest.mark.parametrize("name", list(BROKEN_FORMS))
def test_broken_multipart_forms(alice: httpx.Client, route: str, name: str) -> None:
    kwargs, status, code = BROKEN_FORMS[name]
    kwargs = {**kwargs, "headers": {**alice.headers, **kwargs.get("headers", {})}}
    assert_refused(alice.post(route, **kwargs), status, code)


# --- JSON and text for the agents, queries, headers ---------------------------------------------

JSON = {"Content-Type": "application/json"}
RUN = "/api/agents/run"
JSON_CASES: dict[str, tuple[str, str, dict[str, Any], int, str]] = {
    # name: (method, path, request kwargs, status, code)
    "malformed-json": ("POST", RUN, {"content": b'{"agent": ', "headers": JSON}, 422,
                       "invalid_request"),
    "not-json": ("POST", RUN, {"content": b"agent=summarizer", "headers": JSON}, 422,
                 "invalid_request"),
    "json-as-text-plain": ("POST", RUN, {"content": b'{"agent":"summarizer","input":"hi"}',
                                         "headers": {"Content-Type": "text/plain"}}, 422,
                           "invalid_request"),
    "wrong-types": ("POST", RUN, {"json": {"agent": 5, "input": ["x"]}}, 422,
                    "invalid_request"),
    "a-list-not-an-object": ("POST", RUN, {"json": []}, 422, "invalid_request"),
    "no-body": ("POST", RUN, {}, 422, "invalid_request"),
    "latin-1-bytes-in-json": ("POST", RUN, {"content": b'{"agent":"summarizer","input":"caf\xe9"}',
                                            "headers": JSON}, 400, "bad_request"),
    "lone-surrogate": ("POST", RUN, {"content": b'{"agent":"summarizer","input":"\\ud800 x"}',
                                     "headers": JSON}, 422, "invalid_request"),
    "input-just-over-the-limit": ("POST", RUN, {"json": {"agent": "summarizer",
                                                         "input": "x" * 20_001}}, 422,
                                  "invalid_request"),
    "input-of-5-mb": ("POST", RUN, {"json": {"agent": "summarizer", "input": "x" * 5_000_000}},
                      422, "invalid_request"),
    "json-nested-100k-deep": ("POST", RUN, {"content": b"[" * 100_000 + b"]" * 100_000,
                                            "headers": JSON}, 400, "bad_request"),
    "blank-input": ("POST", RUN, {"json": {"agent": "summarizer", "input": " \n\t "}}, 422,
                    "bad_input"),
    "agent-id-traversal": ("POST", RUN, {"json": {"agent": f"../../{MARK}", "input": "hi"}},
                           404, "unknown_agent"),
    "chat-without-a-session": ("POST", "/api/agents/chat",
                               {"json": {"agent": "summarizer", "input": "hi"}}, 422,
                               "invalid_request"),
    "chat-session-traversal": ("POST", "/api/agents/chat",
                               {"json": {"agent": "summarizer", "input": "hi",
                                         "session_id": f"../../../tmp/{MARK}"}}, 422,
                               "invalid_request"),
    "stream-malformed-json": ("POST", "/api/agents/run/stream",
                              {"content": b'{"agent": ', "headers": JSON}, 422,
                              "invalid_request"),
    "stream-unknown-agent": ("POST", "/api/agents/run/stream",
                             {"json": {"agent": "nobody", "input": "hi"}}, 404,
                             "unknown_agent"),
    "stream-session-traversal": ("POST", "/api/agents/run/stream",
                                 {"json": {"agent": "summarizer", "input": "hi",
                                           "session_id": f"..%2f{MARK}"}}, 422,
                                 "invalid_request"),
    "login-malformed-json": ("POST", "/api/login", {"content": b'{"token": ', "headers": JSON},
                             422, "invalid_request"),
    "login-token-not-a-string": ("POST", "/api/login", {"json": {"token": 12345678}}, 422,
                                 "invalid_request"),
    "login-token-oversized": ("POST", "/api/login", {"json": {"token": "x" * 100_000}}, 422,
                              "invalid_request"),
    "login-latin-1": ("POST", "/api/login", {"content": b'{"token":"caf\xe9-token"}',
                                             "headers": JSON}, 400, "bad_request"),
    # Oversized or malformed query parameters and headers.
    "search-oversized": ("GET", "/api/transcripts", {"params": {"q": "x" * 8000}}, 422,
                         "invalid_request"),
    "agent-filter-oversized": ("GET", "/api/transcripts", {"params": {"agent_id": "x" * 8000}},
                               422, "invalid_request"),
    "cursor-oversized": ("GET", "/api/transcripts", {"params": {"cursor": "x" * 8000}}, 400,
                         "bad_cursor"),
    "cursor-traversal": ("GET", "/api/transcripts", {"params": {"cursor": f"../../{MARK}"}},
                         400, "bad_cursor"),
    "limit-astronomical": ("GET", "/api/transcripts", {"params": {"limit": "1" + "0" * 40}},
                           422, "invalid_request"),
    "limit-negative": ("GET", "/api/transcripts", {"params": {"limit": "-1"}}, 422,
                       "invalid_request"),
    "since-not-a-date": ("GET", "/api/transcripts", {"params": {"since": "yesterday"}}, 422,
                         "invalid_request"),
    "status-oversized": ("GET", "/api/transcripts", {"params": {"status": "x" * 8000}}, 422,
                         "invalid_request"),
    "export-format-unknown": ("GET", "/api/transcripts/export", {"params": {"format": "exe"}},
                              422, "invalid_request"),
    "export-search-oversized": ("GET", "/api/transcripts/export",
                                {"params": {"q": "x" * 8000}}, 422, "invalid_request"),
    "export-agent-filter-oversized": ("GET", "/api/transcripts/export",
                                      {"params": {"agent_id": "x" * 8000}}, 422,
                                      "invalid_request"),
    "usage-by-oversized": ("GET", "/api/agents/usage", {"params": {"by": "x" * 8000}}, 422,
                           "invalid_request"),
    "session-id-oversized": ("GET", "/api/agents/sessions/" + "x" * 8000, {}, 422,
                             "invalid_request"),
    "last-event-id-traversal": ("GET", "/api/events",
                                {"headers": {"Last-Event-ID": f"../../{MARK}"}}, 400,
                                "bad_last_event_id"),
    "last-event-id-oversized": ("GET", "/api/events", {"headers": {"Last-Event-ID": "1" * 8000}},
                                422, "invalid_request"),
}  # fmt: skip


@pytest.mark.e2e
@pytest.mark.parametrize("name", list(JSON_CASES))
def test_bad_json_text_and_parameters(alice: httpx.Client, name: str) -> None:
    method, path, kwargs, status, code = JSON_CASES[name]
    kwargs = {**kwargs, "headers": {**alice.headers, **kwargs.get("headers", {})}}
    assert_refused(alice.request(method, path, **kwargs), status, code)


# --- ids that try to leave their folder ---------------------------------------------------------


@dataclass
class Raw:
    status: int
    headers: dict[str, str]
    body: bytes


def raw_request(base_url: str, method: str, target: str, headers: dict[str, str]) -> Raw:
    """`target` exactly as written (httpx would resolve `..` and decode `%2e` first)."""
    where = urlsplit(base_url)
    connection = http.client.HTTPConnection(where.hostname or "127.0.0.1", where.port, timeout=30)
    try:
        connection.request(method, target, headers=headers)
        response = connection.getresponse()
        return Raw(response.status, {k.lower(): v for k, v in response.getheaders()},
                   response.read())  # fmt: skip
    finally:
        connection.close()


TRAVERSALS = [
    ("GET", "/api/transcripts/.."),
    ("GET", f"/api/transcripts/../../{MARK}"),
    ("GET", "/api/transcripts/%2e%2e%2f%2e%2e%2fdata%2fgateway.db"),
    ("GET", "/api/transcripts/..%5c..%5cwindows%5cwin.ini"),
    ("GET", f"/api/transcripts/%2e%2e%2f{MARK}"),
    ("DELETE", "/api/transcripts/.."),
    ("DELETE", "/api/transcripts/%2e%2e%2f%2e%2e%2fdata%2fgateway.db"),
    ("DELETE", "/api/transcripts/..%2F..%2Faudio"),
    ("DELETE", "/api/transcripts/%2e%2e"),
    ("GET", "/api/agents/sessions/.."),
    ("GET", "/api/agents/sessions/..%2F..%2Fsessions.sqlite"),
    ("GET", f"/api/agents/sessions/%2e%2e%2f{MARK}"),
    ("GET", "/../../../../etc/passwd"),
    ("GET", "/..%2F..%2F..%2F..%2Fetc%2Fpasswd"),
    ("GET", "/%2e%2e/%2e%2e/%2e%2e/etc/passwd"),
    ("GET", "/index.html/../../../pyproject.toml"),
    ("GET", "/js/..%2F..%2F..%2F..%2Fpyproject.toml"),
    ("GET", "/%00/etc/passwd"),
]


@pytest.mark.e2e
@pytest.mark.parametrize(("method", "target"), TRAVERSALS)
def test_path_traversal_in_ids_and_static_files(
    rig: Rig, alice: httpx.Client, method: str, target: str
) -> None:
    """Each attempt is a 4xx with a stable code; nothing outside the web folder or the
    caller's own history is read (the database, a system file) or deleted."""
    db = rig.stack.data_dir / "gateway.db"
    db_size = db.stat().st_size
    got = raw_request(rig.stack.gateway, method, target, dict(alice.headers))
    assert 400 <= got.status < 500, (method, target, got.status, got.body[:300])
    assert got.headers.get("content-type", "").startswith("application/json"), got.headers
    body = ErrorBody.model_validate_json(got.body)
    assert body.code in CODES, body
    for leaked in (b"root:", b"[tool.", b"SQLite format", b"[extensions]"):
        assert leaked not in got.body, (target, got.body[:300])
    assert db.exists() and db.stat().st_size >= db_size


# --- what is left behind --------------------------------------------------------------------


@pytest.mark.e2e
def test_a_hostile_file_name_is_stored_inside_the_data_folder(rig: Rig) -> None:
    """The one accepted upload of this module (run last): the name a client gives its file
    never becomes a path. Its audio lands under data/audio, nowhere else."""
    before = files_outside_data(rig.stack.root)
    with httpx.Client(base_url=rig.stack.gateway, headers=rig.stack.headers("alice")) as http:
        for name in (f"../../../../../tmp/{MARK}.wav", f"/tmp/{MARK}.wav", f"..\\..\\{MARK}.wav"):
            made = http.post("/api/recordings", files={"file": (name, GOOD, "audio/wav")})
            assert made.status_code == 202, made.text
    assert files_outside_data(rig.stack.root) == before
    stored = list((rig.stack.data_dir / "audio").rglob("*"))
    assert stored and all(MARK not in str(p) for p in stored)
    assert rig.streams().get(PRIORITY_RECORDINGS) == 3  # short uploads: the priority lane


def test_no_file_named_after_a_traversal_exists_anywhere(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """After every test above: nothing called MARK in /tmp or under this run's folders."""
    assert not list(Path("/tmp").glob(f"*{MARK}*"))
    assert not list(tmp_path_factory.getbasetemp().rglob(f"*{MARK}*"))


# --- the agent registry --------------------------------------------------------------------------

VALID_AGENT = "id: fine\ninstructions: Answer.\n"
BROKEN_YAML: dict[str, bytes] = {
    "unclosed-bracket": b"id: [unclosed\ninstructions: x\n",
    "tab-indent": b"\t- tab: bad\n",
    "python-object-tag": f"!!python/object/apply:os.system ['touch /tmp/{MARK}']\n".encode(),
    "two-documents": b"---\nid: one\ninstructions: a\n---\nid: two\ninstructions: b\n",
    "top-level-list": b"- id: a\n  instructions: b\n",
    "empty": b"",
    "only-a-comment": b"# nothing here\n",
    "undefined-alias": b"id: a\ninstructions: *nowhere\n",
    "latin-1-not-utf-8": b"id: latin\ninstructions: caf\xe9 au lait\n",
    "random-bytes": random.Random(7).randbytes(512),
    "nested-5000-deep": b"id: deep\ninstructions: " + b"[" * 5000 + b"]" * 5000 + b"\n",
    "agents-not-a-list": b"agents: {id: a}\n",
    "agent-not-a-mapping": b"agents: [just-a-string]\n",
}


@pytest.mark.parametrize("name", list(BROKEN_YAML))
def test_a_broken_agent_file_is_a_problem_of_that_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """The loader lists the broken file as a problem (beside a valid one); it never raises
    anything but RegistryError (a traceback would stop the agent service without a word)."""
    monkeypatch.setenv("WHISP_CONFIG", str(tmp_path / "absent.yaml"))
    folder = tmp_path / "agents"
    folder.mkdir()
    (folder / "fine.yaml").write_text(VALID_AGENT)
    broken = folder / f"{name}.yaml"
    broken.write_bytes(BROKEN_YAML[name])
    settings = AgentSettings(registry=[folder], data_dir=tmp_path / "data")
    with pytest.raises(RegistryError) as raised:
        load_registry([folder], settings, builtin_tools().names())
    files = {problem.file for problem in raised.value.problems}
    assert files == {str(broken)}, raised.value.problems
    assert not Path(f"/tmp/{MARK}").exists()


def _laughs(where: str) -> str:
    """The billion-laughs document: nine levels of nine aliases (9**9 nodes if expanded)."""
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 9)}]" for n in range(1, 9)]
    return "\n".join(lines) + "\n" + where + "\n"


def _dense_handoffs(n: int) -> str:
    """`n` agents that may each hand off to all (one list, shared by an alias): a ~1 KB file
    whose handoff graph has more cycles than any search can list."""
    ids = ", ".join(f"a{i}" for i in range(n))
    agents = [f"  - id: a0\n    instructions: x\n    delegate_to: &all [{ids}]"]
    agents += [f"  - id: a{i}\n    instructions: x\n    delegate_to: *all" for i in range(1, n)]
    return "agents:\n" + "\n".join(agents) + "\n"


BOMBS: dict[str, str] = {
    "laughs-as-instructions": _laughs("id: bomb\ninstructions: *l8"),
    "laughs-as-tools": _laughs("id: bomb\ninstructions: x\ntools: *l8"),
    "laughs-as-handoffs": _laughs("id: bomb\ninstructions: x\ndelegate_to: *l8"),
    "laughs-as-the-agent-list": _laughs("agents: *l8"),
    "laughs-as-pipeline-stages": _laughs("id: bomb\nkind: pipeline\nstages: *l8"),
    "laughs-as-guardrail-terms": _laughs(
        "id: bomb\ninstructions: x\nguardrails: [{type: blocked_terms, terms: *l8}]"
    ),
    "dense-handoff-graph": _dense_handoffs(14),
}
BOMB_SECONDS = 20.0
BOMB_MAX_RSS_MB = 300
"""`whisp agents validate` of a valid registry peaks at ~70 MB here."""


def peak_rss_mb(pid: int) -> float:
    """The process's own high-water mark (VmHWM counts from its exec, not its fork)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    line = next((x for x in status.splitlines() if x.startswith("VmHWM:")), "VmHWM: 0 kB")
    return int(line.split()[1]) / 1024


def validate_in_child(path: Path, cwd: Path) -> tuple[int | None, float, float, str]:
    """`whisp agents validate PATH` in its own process, killed after BOMB_SECONDS:
    (exit code or None when killed, seconds, peak RSS in MB, what it printed)."""
    config = cwd / "config.yaml"
    config.write_text("mode: local\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WHISP_", "OPENAI"))}
    env |= {"WHISP_CONFIG": str(config), "COLUMNS": "200"}
    out = cwd / "validate.out"
    peak = 0.0
    with out.open("wb") as sink:
        started = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "whisp_cli.main", "agents", "validate", str(path)],
            cwd=cwd, env=env, stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
        while proc.poll() is None and time.monotonic() - started < BOMB_SECONDS:
            peak = max(peak, peak_rss_mb(proc.pid))
            time.sleep(0.05)
        killed = proc.poll() is None
        if killed:
            peak = max(peak, peak_rss_mb(proc.pid))
            proc.kill()
        proc.wait(timeout=30)
        took = time.monotonic() - started
    return None if killed else proc.returncode, took, peak, out.read_text(errors="replace")


@pytest.mark.parametrize("name", list(BOMBS))
def test_a_yaml_bomb_is_refused_quickly_by_whisp_agents_validate(tmp_path: Path, name: str) -> None:
    bomb = tmp_path / f"{name}.yaml"
    bomb.write_text(BOMBS[name])
    assert bomb.stat().st_size < 4096
    code, took, rss_mb, printed = validate_in_child(bomb, tmp_path)
    assert code is not None, f"still validating after {BOMB_SECONDS:.0f}s ({rss_mb:.0f} MB)"
    assert code == 1, printed
    assert "invalid" in printed and str(bomb) in printed, printed
    assert "Traceback" not in printed, printed
    assert rss_mb < BOMB_MAX_RSS_MB, f"peak {rss_mb:.0f} MB"
    print(f"{name}: refused in {took:.1f}s, peak {rss_mb:.0f} MB")


def test_whisp_agents_validate_lists_every_broken_file_at_once(tmp_path: Path) -> None:
    """The whole corpus in one folder, as a person's agents/ folder after a bad day: one
    run, exit 1, every file named, no traceback."""
    folder = tmp_path / "agents"
    folder.mkdir()
    for name, text in BROKEN_YAML.items():
        (folder / f"{name}.yaml").write_bytes(text)
    code, _took, _rss, printed = validate_in_child(folder, tmp_path)
    assert code == 1, printed
    assert "Traceback" not in printed, printed[-3000:]
    missing = [name for name in BROKEN_YAML if f"{name}.yaml" not in printed]
    assert not missing, f"not reported: {missing}\n{printed[-3000:]}"
