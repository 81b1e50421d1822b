"""Who may call the gateway: tokens, cookies, and single-user mode only on loopback."""

from __future__ import annotations

from http.cookies import SimpleCookie

import httpx
from itsdangerous import URLSafeTimedSerializer

from tests.gateway import sse
from tests.gateway.conftest import GatewayFactory, add_users
from whisp_gateway.auth import COOKIE
from whisp_gateway.repository import SqlRepository

WAV = ("clip.wav", b"RIFF0000WAVEfmt ", "audio/wav")

# Every route that shows or changes a user's data, as (method, path, extra request args).
PRIVATE_ROUTES: list[tuple[str, str, dict[str, object]]] = [
    ("GET", "/api/me", {}),
    ("GET", "/api/transcripts", {}),
    ("GET", "/api/transcripts?q=hello", {}),
    ("GET", "/api/transcripts/some-recording", {}),
    ("DELETE", "/api/transcripts/some-recording", {}),
    ("GET", "/api/transcripts/export?format=csv", {}),
    ("GET", "/api/events", {}),
    ("GET", "/api/agents", {}),
    ("POST", "/api/agents/run", {"json": {"agent": "echo", "input": "hi"}}),
    ("POST", "/api/recordings", {"files": {"file": WAV}}),
    ("POST", "/v1/audio/transcriptions", {"files": {"file": WAV}, "data": {"model": "whisper-1"}}),
]


async def assert_all_refused(client: httpx.AsyncClient, **headers: str) -> None:
    for method, path, extra in PRIVATE_ROUTES:
        response = await client.request(method, path, headers=headers, **extra)  # type: ignore[arg-type]
        assert response.status_code == 401, (method, path, response.text)
        body = response.json()
        if path.startswith("/v1/"):  # OpenAI's error shape, so SDKs raise AuthenticationError
            body = body["error"]
        assert body["code"] == "unauthorized"
        assert response.headers["www-authenticate"] == "Bearer"


async def test_users_exist_so_a_token_is_required(gateway: GatewayFactory, sqlite_url: str) -> None:
    tokens = await add_users(sqlite_url, "alice")
    with gateway() as url:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            await assert_all_refused(client)
            await assert_all_refused(client, Authorization="Bearer wsp_not-a-real-token")
            await assert_all_refused(client, Authorization=f"Basic {tokens['alice']}")
            me = await client.get("/api/me", headers={"Authorization": f"Bearer {tokens['alice']}"})
            assert me.status_code == 200
            assert me.json()["user"]["name"] == "alice"
            assert me.json()["single_user"] is False
            # What stays public: the page, health, and the model list.
            for path in ("/", "/healthz", "/v1/models"):
                assert (await client.get(path)).status_code == 200, path


async def test_single_user_mode_on_loopback_until_the_first_user(
    gateway: GatewayFactory, sqlite_url: str
) -> None:
    with gateway() as url:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            me = (await client.get("/api/me")).json()
            assert me == {"user": {"id": "local", "name": "local", "created_at": None},
                          "single_user": True}  # fmt: skip
            # OpenAI SDKs insist on some key: any key is the local user.
            keyed = await client.get("/api/me", headers={"Authorization": "Bearer sk-anything"})
            assert keyed.json()["user"]["id"] == "local"
            assert (await client.get("/api/transcripts")).status_code == 200

            tokens = await add_users(sqlite_url, "alice")  # `whisp users add` while running
            await assert_all_refused(client)
            await assert_all_refused(client, Authorization="Bearer sk-anything")
            me = await client.get("/api/me", headers={"Authorization": f"Bearer {tokens['alice']}"})
            assert me.json()["user"]["name"] == "alice"


async def test_beyond_loopback_auth_is_always_required(gateway: GatewayFactory) -> None:
    """Bound to every address with no users at all: nobody gets in without a token."""
    with gateway(host="0.0.0.0") as url:
        assert url.startswith("http://127.0.0.1:")  # reached over loopback, still refused
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            await assert_all_refused(client)
            await assert_all_refused(client, Authorization="Bearer sk-anything")
            assert (await client.get("/healthz")).status_code == 200


def session_cookie(response: httpx.Response) -> SimpleCookie:
    cookie = SimpleCookie()
    for header in response.headers.get_list("set-cookie"):
        cookie.load(header)
    return cookie


async def test_login_cookie_and_logout(gateway: GatewayFactory, sqlite_url: str) -> None:
    tokens = await add_users(sqlite_url, "alice", "bob")
    with gateway() as url:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            refused = await client.post("/api/login", json={"token": "wsp_wrong-token-here"})
            assert refused.status_code == 401
            assert COOKIE not in session_cookie(refused)
            short = await client.post("/api/login", json={"token": "x"})
            assert short.status_code == 422

            login = await client.post("/api/login", json={"token": tokens["alice"]})
            assert login.status_code == 200
            assert login.json()["user"]["name"] == "alice"
            alice_id = login.json()["user"]["id"]
            morsel = session_cookie(login)[COOKIE]
            assert morsel["httponly"] is True
            assert morsel["samesite"].lower() == "strict"
            assert morsel["path"] == "/"
            assert int(morsel["max-age"]) > 0
            assert tokens["alice"] not in morsel.value  # the token never sits in the browser

            # The cookie alone is enough, for REST and for the SSE stream.
            assert client.cookies.get(COOKIE) == morsel.value
            me = await client.get("/api/me")
            assert me.json()["user"]["name"] == "alice"
            async with sse.events(client):
                pass

            logout = await client.post("/api/logout")
            assert logout.status_code == 204
            cleared = session_cookie(logout)[COOKIE]
            assert cleared.value in ("", '""')
            assert cleared["max-age"] == "0"
            assert client.cookies.get(COOKIE) is None
            assert (await client.get("/api/me")).status_code == 401

        for forged in (
            morsel.value[:-2] + ("AA" if not morsel.value.endswith("AA") else "BB"),  # signature
            "bob." + morsel.value.split(".", 1)[1],  # someone else's id, alice's signature
            URLSafeTimedSerializer("another-secret", salt="session").dumps(alice_id),
            "garbage",
        ):
            async with httpx.AsyncClient(
                base_url=url, timeout=10, cookies={COOKIE: forged}
            ) as client:
                response = await client.get("/api/me")
                assert response.status_code == 401, forged
                assert response.json()["code"] == "unauthorized"

        # A removed user's session ends at once.
        repo = SqlRepository(sqlite_url)
        await repo.remove_user("alice")
        await repo.close()
        async with httpx.AsyncClient(
            base_url=url, timeout=10, cookies={COOKIE: morsel.value}
        ) as client:
            gone = await client.get("/api/me")
            assert gone.status_code == 401
            assert "no longer exists" in gone.json()["message"]
