"""Auth and isolation on every route of a multi-user gateway, as real processes.

The routes come from the gateway app itself (`app.routes`), so a route added tomorrow is
checked tomorrow: it is either in `PUBLIC` (with the reason it needs no credentials) or it
must refuse every caller that is not signed in with 401 and the shared error body.

The stack: Redis, the audio service, a transcription worker (tiny.en), the agent service
(its model a local stand-in speaking OpenAI's chat protocol, `tests/agents/chat_stub.py`)
and the gateway, each its own process, with two users (alice and bob) and a service token
shared by the services. Alice's data is made the way a client makes it: real speech
uploaded and transcribed, `/v1/audio/transcriptions`, agent chats and streamed runs; bob then
tries every route to reach it.

`multi_user_stack()` is also what `test_schemathesis.py` and `test_bad_input.py` run.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import fastapi.routing
import httpx
import pytest
from fastapi.routing import APIRoute, APIWebSocketRoute
from starlette.routing import Mount, Route, WebSocketRoute
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.agents.chat_stub import ChatStub
from tests.gateway import sse
from tests.reliability.rig import Specs, private_redis, services, write_config
from tests.support.processes import Services
from tests.support.speech import Utterance
from tests.support.tools import needs_tools
from whisp_gateway.app import create_app
from whisp_gateway.auth import COOKIE
from whisp_gateway.repository import SqlRepository
from whisp_gateway.settings import GatewaySettings
from whisp_shared.bus import EventBus
from whisp_shared.caller import USER_HEADER
from whisp_shared.config import BusSettings
from whisp_shared.http_errors import ErrorBody, OpenAIErrorBody, OpenAIErrorDetail

# --- the stack ------------------------------------------------------------------------------


@dataclass
class Stack:
    """A running multi-user stack: where it listens, who may use it, what it wrote."""

    root: Path
    gateway: str
    redis_url: str
    tokens: dict[str, str]
    """name -> API token (as `whisp users add` prints it)."""
    ids: dict[str, str]
    """name -> user id."""
    service_token: str
    stub: ChatStub
    procs: Services
    secrets_used: set[str] = field(default_factory=set)
    """Every token a test sent (valid or not): none may ever reach a log."""

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_dir(self) -> Path:
        return self.root / "logs"

    def headers(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[name]}"}

    def client(
        self, name: str | None = None, *, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> httpx.AsyncClient:
        """A client signed in as `name` (anonymous without), with extra `headers`."""
        sent = {**(self.headers(name) if name else {}), **(headers or {})}
        return httpx.AsyncClient(base_url=self.gateway, headers=sent, timeout=60, **kwargs)


async def _create_users(database_url: str, names: tuple[str, ...]) -> dict[str, tuple[str, str]]:
    repo = SqlRepository(database_url)
    try:
        await repo.create_schema()
        made = {name: await repo.add_user(name) for name in names}
        return {name: (user.id, token) for name, (user, token) in made.items()}
    finally:
        await repo.close()


@contextmanager
def multi_user_stack(
    root: Path,
    *,
    worker: bool = False,
    users: tuple[str, ...] = ("alice", "bob"),
    gateway_env: dict[str, str] | None = None,
    config: str = "",
) -> Iterator[Stack]:
    """Redis, audio, agents (+ a transcription worker with `worker`) and a gateway with
    `users` created before it starts (so it is in multi-user mode from its first request).
    Every process runs in `root` (its working folder), data under `root/data`; `config` is
    more config.yaml (other sections than `agents`)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "data").mkdir(exist_ok=True)
    service_token = "svc_" + secrets.token_urlsafe(24)
    database_url = f"sqlite+aiosqlite:///{root / 'data' / 'gateway.db'}"
    made = asyncio.run(_create_users(database_url, users))
    with ChatStub() as stub, private_redis(root / "redis") as redis:
        config_file = write_config(
            root / "config",
            "agents:\n"
            "  default_provider: stub\n"
            "  providers:\n"
            f"    stub: {{base_url: '{stub.base_url}', model: stub-model, max_attempts: 1}}\n"
            "  local_llm: {enabled: false}\n" + config,
        )
        specs = Specs(config_file, WHISP_SERVICE_TOKEN=service_token)
        audio = specs.audio()
        gateway_spec = specs.gateway(
            audio=audio,
            WHISP_WEB__DATABASE_URL=database_url,
            WHISP_WEB__SESSION_SECRET=secrets.token_urlsafe(24),
            **(gateway_env or {}),
        )
        agents = specs.agents(WHISP_AGENTS__GATEWAY__URL=gateway_spec.url)
        gateway_spec = replace(
            gateway_spec, env=(*gateway_spec.env, ("WHISP_WEB__AGENT_SERVICE_URL", agents.url))
        )
        wanted = [audio, agents, *([specs.worker("transcription-1")] if worker else [])]
        with services([*wanted, gateway_spec], root, redis.url, cwd=root) as procs:
            yield Stack(
                root=root,
                gateway=gateway_spec.url,
                redis_url=redis.url,
                tokens={name: token for name, (_id, token) in made.items()},
                ids={name: user_id for name, (user_id, _token) in made.items()},
                service_token=service_token,
                stub=stub,
                procs=procs,
                secrets_used={token for _id, token in made.values()} | {service_token},
            )


def assert_error_body(response: httpx.Response, status: int, code: str | None = None) -> None:
    """`status` with the shared error body (OpenAI's shape under /v1) and, if given, `code`."""
    assert response.status_code == status, (response.request.url, response.text)
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body: ErrorBody | OpenAIErrorDetail
    if response.request.url.path.startswith("/v1/"):
        body = OpenAIErrorBody.model_validate_json(response.content).error
    else:
        body = ErrorBody.model_validate_json(response.content)
    assert body.message
    if code is not None:
        assert body.code == code, response.text


# --- which routes there are -------------------------------------------------------------------

PUBLIC: dict[tuple[str, str], str] = {
    ("GET", "/healthz"): "liveness probe: answers that the process runs, nothing about anyone",
    ("GET", "/readyz"): "readiness probe for orchestrators: only true/false per dependency",
    ("GET", "/metrics"): "Prometheus scrape: aggregate counters, no user ids or content",
    ("POST", "/api/login"): "the way in: exchanges an API token for a session cookie",
    ("POST", "/api/logout"): "only clears the caller's own cookie; there is nothing to protect",
    ("GET", "/v1/models"): "OpenAI SDKs list models before anything else; a fixed list",
    ("GET", "/openapi.json"): "the API's description (FastAPI docs)",
    ("GET", "/docs"): "the API's description (Swagger UI)",
    ("GET", "/docs/oauth2-redirect"): "part of the Swagger UI",
    ("GET", "/redoc"): "the API's description (ReDoc)",
    ("MOUNT", "/"): "the web page's static files (HTML, JS, CSS): the login form must load",
}
"""Routes that answer without credentials, each with the reason."""

WEBSOCKETS: dict[str, str] = {
    "/v1/realtime": "test_the_realtime_socket_refuses_every_bad_credential (below); the "
    "subprotocol token and the cookie's origin rule in tests/gateway/test_realtime.py",
}
"""WebSocket routes with an auth check of their own below: a new one fails
`test_every_route_is_classified` until it gets one."""

PROBE_ID = "probe-id"
SAMPLE_REQUESTS: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/api/recordings"): {"files": {"file": ("a.wav", b"RIFF....WAVE", "audio/wav")}},
    ("POST", "/v1/audio/transcriptions"): {
        "files": {"file": ("a.wav", b"RIFF....WAVE", "audio/wav")},
        "data": {"model": "whisper-1"},
    },
    ("POST", "/api/agents/run"): {"json": {"agent": "summarizer", "input": "hello"}},
    ("POST", "/api/agents/chat"): {
        "json": {"agent": "summarizer", "input": "hello", "session_id": "s1"}
    },
    ("POST", "/api/agents/run/stream"): {"json": {"agent": "summarizer", "input": "hello"}},
}
"""A request each route would accept from a signed-in user (other routes need none), so a
route that forgot its auth answers 2xx here rather than a 422 that hides it."""


def gateway_app() -> Any:
    """The gateway's app as `python -m whisp_gateway` builds it (not started: no I/O)."""
    settings = GatewaySettings(database_url="sqlite+aiosqlite:///:memory:")
    return create_app(settings, EventBus(BusSettings(redis_url="redis://127.0.0.1:9/0")))


def route_table() -> tuple[list[tuple[str, str]], list[str]]:
    """(method, path) of every HTTP route and the path of every WebSocket route; mounts
    appear as ("MOUNT", path). Routers included in the app are walked through (FastAPI
    >= 0.16x keeps them as lazy entries in `app.routes`)."""
    app = gateway_app()
    walk = getattr(fastapi.routing, "iter_route_contexts", None)
    http: list[tuple[str, str]] = []
    sockets: list[str] = []
    for entry in walk(app.routes) if walk else app.routes:
        route = getattr(entry, "original_route", entry)
        path = str(getattr(entry, "path", None) or getattr(route, "path", "") or "/")
        if isinstance(route, APIWebSocketRoute | WebSocketRoute):
            sockets.append(path)
        elif isinstance(route, APIRoute | Route):
            methods = getattr(entry, "methods", None) or route.methods or ()
            http.extend((m, path) for m in sorted(methods) if m != "HEAD")
        elif isinstance(route, Mount):
            http.append(("MOUNT", path))
        else:
            raise AssertionError(f"a route of an unknown kind: {route!r}")
    return http, sockets


def private_routes() -> list[tuple[str, str]]:
    return [route for route in route_table()[0] if route not in PUBLIC]


def concrete(path: str) -> str:
    """A path template with every `{param}` filled in."""
    out, rest = "", path
    while "{" in rest:
        head, _, tail = rest.partition("{")
        out += head + PROBE_ID
        rest = tail.partition("}")[2]
    return out + rest


def test_every_route_is_classified() -> None:
    """Each route is public for a stated reason or checked below; nothing is left over."""
    http, sockets = route_table()
    assert set(PUBLIC) <= set(http), (
        f"PUBLIC names routes that do not exist: {set(PUBLIC) - set(http)}"
    )
    assert all(reason.strip() for reason in PUBLIC.values())
    unknown_sockets = [path for path in sockets if path not in WEBSOCKETS]
    assert not unknown_sockets, f"add an auth check for the WebSocket route(s) {unknown_sockets}"
    private = private_routes()
    assert len(private) >= 12, private  # the REST, SSE, agent and /v1 routes
    for key in SAMPLE_REQUESTS:
        assert key in private, f"SAMPLE_REQUESTS names {key}, which is not a private route"


def test_every_private_route_documents_its_401() -> None:
    spec = gateway_app().openapi()
    for method, path in private_routes():
        responses = spec["paths"][path][method.lower()]["responses"]
        assert "401" in responses, (method, path)
        schema = responses["401"]["content"]["application/json"]["schema"]["$ref"]
        model = "OpenAIErrorBody" if path.startswith("/v1/") else "ErrorBody"
        assert schema == f"#/components/schemas/{model}", (method, path, schema)


# --- the stack, shared by the module's tests ---------------------------------------------------


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with multi_user_stack(tmp_path_factory.mktemp("auth-stack"), worker=True) as running:
        yield running


async def probe(client: httpx.AsyncClient, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """One request whose body is read only when it is not an (endless) event stream."""
    extra = SAMPLE_REQUESTS.get((method, path), {})
    async with client.stream(method, concrete(path), **extra, **kwargs) as response:
        if not response.headers.get("content-type", "").startswith("text/event-stream"):
            await response.aread()
        return response


def bad_credentials(stack: Stack) -> dict[str, dict[str, Any]]:
    """Every way of calling that must not get in, by name: kwargs for the request."""
    bogus = "wsp_" + secrets.token_urlsafe(32)
    wrong_service = "svc_" + secrets.token_urlsafe(24)
    stack.secrets_used |= {bogus, wrong_service}
    alice = stack.ids["alice"]
    return {
        "no credentials": {},
        "an unknown API token": {"headers": {"Authorization": f"Bearer {bogus}"}},
        "a valid token in the wrong scheme": {
            "headers": {"Authorization": f"Basic {stack.tokens['alice']}"}
        },
        "a bearer without a token": {"headers": {"Authorization": "Bearer"}},
        "a forged session cookie": {"cookies": {COOKIE: "alice.forged-signature"}},
        "X-Whisp-User alone": {"headers": {USER_HEADER: alice}},
        "the service token without X-Whisp-User": {
            "headers": {"Authorization": f"Bearer {stack.service_token}"}
        },
        "a wrong service token with X-Whisp-User": {
            "headers": {"Authorization": f"Bearer {wrong_service}", USER_HEADER: alice}
        },
    }


@pytest.mark.e2e
@pytest.mark.timeout(120)
async def test_the_realtime_socket_refuses_every_bad_credential(stack: Stack) -> None:
    url = stack.gateway.replace("http://", "ws://") + "/v1/realtime?intent=transcription"
    for label, kwargs in bad_credentials(stack).items():
        headers = dict(kwargs.get("headers", {}))
        if "cookies" in kwargs:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in kwargs["cookies"].items())
        with pytest.raises(InvalidStatus) as refused:
            await connect(url, additional_headers=headers, open_timeout=10)
        assert refused.value.response.status_code == 401, label
        assert json.loads(refused.value.response.body or b"{}")["code"] == "unauthorized", label
    alice = {"Authorization": f"Bearer {stack.tokens['alice']}"}
    async with connect(url, additional_headers=alice, open_timeout=10) as ws:
        assert json.loads(await ws.recv())["type"] == "session.created"


@pytest.mark.e2e
@pytest.mark.timeout(300)
async def test_no_private_route_answers_without_valid_credentials(stack: Stack) -> None:
    routes = private_routes()
    for label, kwargs in bad_credentials(stack).items():
        async with stack.client(**kwargs) as caller:
            for method, path in routes:
                if method == "MOUNT":
                    continue
                response = await probe(caller, method, path)
                where = f"{method} {path} with {label}"
                assert response.status_code == 401, (where, response.status_code, response.text)
                assert_error_body(response, 401, "unauthorized")
                assert response.headers.get("www-authenticate") == "Bearer", where
                # A refused browser must not be left holding a session either.
                assert COOKIE not in response.headers.get("set-cookie", ""), where
    async with stack.client() as anonymous:  # what is public really is
        for path in ("/healthz", "/readyz", "/metrics", "/v1/models", "/", "/openapi.json"):
            assert (await anonymous.get(path)).status_code == 200, path


# --- alice's data, then bob's attempts ------------------------------------------------------


@asynccontextmanager
async def watching(client: httpx.AsyncClient, stack: Stack, n: int) -> AsyncIterator[sse.Stream]:
    """An open `/api/events` stream, once the gateway has it (n connections in all)."""
    async with sse.events(client) as stream:
        await wait_sse_clients(stack, n)
        yield stream


async def wait_sse_clients(stack: Stack, n: int) -> None:
    async with httpx.AsyncClient(base_url=stack.gateway, timeout=10) as ops:
        for _ in range(200):
            metrics = (await ops.get("/metrics")).text
            line = next(
                (x for x in metrics.splitlines() if x.startswith("whisp_gateway_sse_clients ")),
                "whisp_gateway_sse_clients 0",
            )
            if float(line.split()[1]) >= n:
                return
            await asyncio.sleep(0.05)
    raise AssertionError(f"{n} SSE connection(s) never registered")


def clip(short_clips: list[tuple[Utterance, Path]], clip_id: str) -> tuple[str, bytes]:
    utterance, path = next((u, p) for u, p in short_clips if u.id == clip_id)
    return utterance.text, path.read_bytes()


async def drain(stream: sse.Stream, quiet_s: float = 0.5) -> list[sse.Message]:
    """Every message that arrives until the stream is quiet for `quiet_s`."""
    got = []
    while True:
        try:
            got.append(await stream.next(quiet_s))
        except TimeoutError:
            return got


def completions_text(stub: ChatStub, start: int) -> str:
    """Everything the model was sent since request number `start`."""
    return json.dumps([seen.body for seen in stub.completions[start:]])


@pytest.mark.e2e
@pytest.mark.timeout(300)
@needs_tools("espeak-ng", "sox", why="real speech for the clips")
async def test_bob_never_sees_alice_by_any_route(
    stack: Stack, short_clips: list[tuple[Utterance, Path]]
) -> None:
    _, alice_wav = clip(short_clips, "dentist")  # "Remind me to call the dentist."
    _, bob_wav = clip(short_clips, "kitchen-lights")
    async with stack.client("alice") as alice, stack.client("bob") as bob:
        async with watching(bob, stack, 1) as bob_live, watching(alice, stack, 2) as alice_live:
            # Alice: a recording with an agent, and one through the OpenAI endpoint.
            made = await alice.post(
                "/api/recordings",
                params={"wait": "true"},
                files={"file": ("alice.wav", alice_wav, "audio/wav")},
                data={"agent_id": "summarizer", "session_id": "shared-name"},
            )
            assert made.status_code == 201, made.text
            alice_rid = made.json()["recording_id"]
            assert "remind" in made.json()["transcript"]["text"].lower()
            v1 = await alice.post(
                "/v1/audio/transcriptions",
                files={"file": ("alice.wav", alice_wav, "audio/wav")},
                data={"model": "whisper-1", "response_format": "verbose_json"},
            )
            assert v1.status_code == 200, v1.text
            assert "remind" in v1.json()["text"].lower()
            mine = [await alice_live.next(30) for _ in range(2)]
            assert {m.payload["user_id"] for m in mine} == {stack.ids["alice"]}
            # Bob's own upload reaches bob, and only bob's events ever do.
            bob_v1 = await bob.post(
                "/v1/audio/transcriptions",
                files={"file": ("bob.wav", bob_wav, "audio/wav")},
                data={"model": "whisper-1"},
            )
            assert bob_v1.status_code == 200, bob_v1.text
            assert "kitchen" in bob_v1.json()["text"].lower()
            assert "remind" not in bob_v1.text.lower()
            await wait_until_history(stack, "alice", 2)
            await asyncio.sleep(1.0)  # let alice's agent answer land too
            seen_by_bob = [await bob_live.next(30), *await drain(bob_live)]
            for message in seen_by_bob:
                assert message.payload["user_id"] == stack.ids["bob"], message
                assert "remind" not in (message.data or "").lower()
        # Replay from the very start gives bob only his own, the same as he saw live.
        async with sse.events(bob, last_event_id="0-0") as replayed:
            again = [await replayed.next(10), *await drain(replayed)]
        assert [m.id for m in again] == [m.id for m in seen_by_bob]

        # Alice's ids are bob's 404, the same 404 as for an id that never was.
        alice_history = (await alice.get("/api/transcripts")).json()["items"]
        alice_ids = {t["recording_id"] for t in alice_history}
        assert alice_rid in alice_ids and len(alice_ids) == 2
        for rid in alice_ids:
            for method in ("GET", "DELETE"):
                got = await bob.request(method, f"/api/transcripts/{rid}")
                never = await bob.request(method, f"/api/transcripts/{rid}x")
                assert_error_body(got, 404, "not_found")
                assert got.json()["message"] == never.json()["message"].replace(f"{rid}x", rid)
        assert (await alice.get(f"/api/transcripts/{alice_rid}")).status_code == 200
        # Listings, search, filters, exports: bob's own only, whatever he passes.
        listing = await bob.get(
            "/api/transcripts",
            params={"user_id": stack.ids["alice"], "q": "remind"},
            headers={USER_HEADER: stack.ids["alice"]},
        )
        assert listing.json()["items"] == [], listing.text
        bob_items = (await bob.get("/api/transcripts")).json()["items"]
        assert len(bob_items) == 1 and "kitchen" in bob_items[0]["text"].lower(), bob_items
        assert not alice_ids & {t["recording_id"] for t in bob_items}
        for fmt in ("jsonl", "csv", "txt", "srt", "vtt"):
            export = await bob.get("/api/transcripts/export", params={"format": fmt})
            assert export.status_code == 200
            assert "remind" not in export.text.lower(), fmt
            assert stack.ids["alice"] not in export.text, fmt

        # Agents: the same session name, two users, two separate conversations.
        start = len(stack.stub.completions)
        said = await alice.post(
            "/api/agents/chat",
            json={"agent": "assistant", "input": "alice-zebra-secret", "session_id": "shared-name"},
        )
        assert said.status_code == 200, said.text
        streamed = await alice.post(
            "/api/agents/run/stream",
            json={"agent": "assistant", "input": "alice-stream-secret", "session_id": "s2"},
        )
        assert streamed.status_code == 200 and "event: done" in streamed.text, streamed.text
        assert "alice-zebra-secret" in completions_text(stack.stub, start)
        start = len(stack.stub.completions)
        bob_said = await bob.post(
            "/api/agents/chat",
            json={"agent": "assistant", "input": "bob-hello", "session_id": "shared-name"},
        )
        assert bob_said.status_code == 200, bob_said.text
        bob_streamed = await bob.post(
            "/api/agents/run/stream",
            json={"agent": "assistant", "input": "bob-stream", "session_id": "s2"},
        )
        assert bob_streamed.status_code == 200 and "event: done" in bob_streamed.text
        sent_for_bob = completions_text(stack.stub, start)
        assert "bob-hello" in sent_for_bob and "bob-stream" in sent_for_bob
        assert "alice" not in sent_for_bob and "remind" not in sent_for_bob.lower()
        for session in ("shared-name", "s2"):
            theirs = await bob.get(f"/api/agents/sessions/{session}")
            assert theirs.status_code == 200, theirs.text
            assert "alice" not in theirs.text and "remind" not in theirs.text.lower()
        hers = (await alice.get("/api/agents/sessions/shared-name")).json()
        assert "alice-zebra-secret" in json.dumps(hers)
        bob_usage = (await bob.get("/api/agents/usage", params={"by": "session"})).json()
        assert {u["key"] for u in bob_usage} == {"shared-name", "s2"}, bob_usage
        assert sum(u["runs"] for u in bob_usage) == 2, bob_usage
        alice_usage = (await alice.get("/api/agents/usage", params={"by": "session"})).json()
        assert {"shared-name", "s2"} <= {u["key"] for u in alice_usage}, alice_usage


async def wait_until_history(stack: Stack, name: str, count: int) -> None:
    async with stack.client(name) as http:
        for _ in range(300):
            items = (await http.get("/api/transcripts")).json()["items"]
            if len(items) >= count and all(t["status"] != "processing" for t in items):
                return
            await asyncio.sleep(0.1)
    raise AssertionError(f"{name}'s history never reached {count} settled transcripts")


@pytest.mark.e2e
@pytest.mark.timeout(300)
@needs_tools("espeak-ng", "sox", why="real speech for the clips")
async def test_a_service_acting_for_a_user_sees_that_user_only(
    stack: Stack, short_clips: list[tuple[Utterance, Path]]
) -> None:
    """`Authorization: Bearer <service token>` + `X-Whisp-User`: what the agent service's
    transcript search does. Scoped to the named user; refused without the header."""
    _, wav = clip(short_clips, "shopping-list")
    async with stack.client("alice") as alice:
        made = await alice.post(
            "/api/recordings", params={"wait": "true"}, files={"file": ("a.wav", wav, "audio/wav")}
        )
        assert made.status_code == 201, made.text
    rid = made.json()["recording_id"]
    service = {"Authorization": f"Bearer {stack.service_token}"}
    async with stack.client() as http:
        for name in ("alice", "bob"):
            me = await http.get("/api/me", headers={**service, USER_HEADER: stack.ids[name]})
            assert me.status_code == 200, me.text
            assert me.json()["user"]["id"] == stack.ids[name]
        as_alice = await http.get(
            "/api/transcripts", headers={**service, USER_HEADER: stack.ids["alice"]}
        )
        alice_ids = {t["recording_id"] for t in as_alice.json()["items"]}
        async with stack.client("alice") as alice:
            assert alice_ids == {
                t["recording_id"] for t in (await alice.get("/api/transcripts")).json()["items"]
            }
        assert rid in alice_ids
        as_bob = await http.get(
            f"/api/transcripts/{rid}", headers={**service, USER_HEADER: stack.ids["bob"]}
        )
        assert_error_body(as_bob, 404, "not_found")
        listing = await http.get(
            "/api/transcripts", headers={**service, USER_HEADER: stack.ids["bob"]}
        )
        assert not alice_ids & {t["recording_id"] for t in listing.json()["items"]}
        usage = await http.get(
            "/api/agents/usage", headers={**service, USER_HEADER: stack.ids["bob"]}
        )
        assert usage.status_code == 200, usage.text
        refused = await http.get("/api/transcripts", headers=service)
        assert_error_body(refused, 401, "unauthorized")
        assert USER_HEADER in refused.json()["message"]


@pytest.mark.e2e
@pytest.mark.timeout(120)
async def test_no_token_in_any_log_or_data_file(stack: Stack) -> None:
    """Runs last in this module: every token the tests above sent, valid or not, is looked
    for in every service's log (and in the gateway's database, which holds hashes only)."""
    for label, kwargs in bad_credentials(stack).items():  # traffic of its own, if run alone
        async with stack.client(**kwargs) as caller:
            assert (await caller.get("/api/me")).status_code == 401, label
    async with stack.client() as http:
        await http.post("/api/login", json={"token": stack.tokens["bob"]})
        await http.get("/api/me", headers=stack.headers("alice"))
    await asyncio.sleep(0.5)  # let the last log lines reach the files
    logs = sorted(stack.log_dir.glob("*.log"))
    assert {p.stem for p in logs} >= {"gateway", "audio", "agents", "transcription-1"}
    for log in logs:
        text = log.read_text(errors="replace")
        assert text, log
        for secret in stack.secrets_used:
            assert secret not in text, f"a token is in {log.name}"
    database = (stack.data_dir / "gateway.db").read_bytes()
    for name, token in stack.tokens.items():
        assert token.encode() not in database, f"{name}'s token is stored in clear"
