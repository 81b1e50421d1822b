"""Per-user rate limits shared by gateway replicas through Redis (two real processes)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.gateway.conftest import GatewayFactory, add_users
from tests.gateway.procs import gateway_processes
from whisp_cli.redis_server import RedisServer
from whisp_gateway.repository import SqlRepository

WAV = ("clip.wav", b"RIFF\x24\x00\x00\x00WAVEfmt ", "audio/wav")
BURST = 5


@pytest.mark.e2e
async def test_two_replicas_share_one_bucket(
    tmp_path: Path, redis_server: RedisServer, redis: object, sqlite_url: str
) -> None:
    env = {
        "REDIS_URL": redis_server.url,
        "WHISP_WEB__DATABASE_URL": sqlite_url,
        "WHISP_WEB__RATE_LIMIT": "5/minute",
        "WHISP_WEB__RATE_BURST": str(BURST),
    }
    # Both replicas start on a fresh database (and race to create its schema).
    with gateway_processes(tmp_path, 2, env) as urls:
        tokens = await add_users(sqlite_url, "alice", "bob")
        alice = {"Authorization": f"Bearer {tokens['alice']}"}
        async with httpx.AsyncClient(timeout=10) as client:
            statuses: list[int] = []
            limited: list[httpx.Response] = []
            for n in range(3 * BURST):  # alternate between the two replicas
                response = await client.post(
                    f"{urls[n % 2]}/api/recordings", headers=alice, files={"file": WAV}
                )
                statuses.append(response.status_code)
                if response.status_code == 429:
                    limited.append(response)
                else:  # past the limiter; the audio service is not running
                    assert response.status_code == 503, response.text
                    assert response.json()["code"] == "audio_unavailable"
            # Exactly the burst got through, in total, and then nothing did (5/minute refills
            # one token per 12 s, far longer than this loop).
            assert statuses == [503] * BURST + [429] * (2 * BURST), statuses
            for response in limited:
                assert response.json()["code"] == "rate_limited"
                retry_after = response.headers["Retry-After"]
                assert retry_after.isdigit(), retry_after
                assert 1 <= int(retry_after) <= 12
                assert f"{retry_after} s" in response.json()["message"]

            # The OpenAI-compatible route draws on the same bucket, in OpenAI's error shape.
            openai = await client.post(
                f"{urls[1]}/v1/audio/transcriptions",
                headers=alice,
                files={"file": WAV},
                data={"model": "whisper-1"},
            )
            assert openai.status_code == 429
            assert openai.json()["error"]["code"] == "rate_limited"
            assert openai.headers["Retry-After"].isdigit()

            # Buckets are per user: bob is not slowed down by alice.
            bob = await client.post(
                f"{urls[0]}/api/recordings",
                headers={"Authorization": f"Bearer {tokens['bob']}"},
                files={"file": WAV},
            )
            assert bob.status_code == 503
            # Reads are not rate-limited.
            reads = await client.get(f"{urls[0]}/api/transcripts", headers=alice)
            assert reads.status_code == 200


async def burst_of(client: httpx.AsyncClient, n: int, headers: dict[str, str]) -> list[int]:
    """Statuses of `n` quick uploads (503 = past the limiter: no audio service runs)."""
    statuses = []
    for _ in range(n):
        response = await client.post("/api/recordings", headers=headers, files={"file": WAV})
        statuses.append(response.status_code)
    return statuses


async def test_the_single_local_user_is_not_throttled(gateway: GatewayFactory) -> None:
    """Loopback, no accounts: a script calling the gateway 25 times in a row gets through."""
    with gateway(rate_limit="5/minute", rate_burst=2) as url:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            assert await burst_of(client, 25, {}) == [503] * 25


async def test_a_service_account_has_its_own_limit(
    gateway: GatewayFactory, sqlite_url: str
) -> None:
    repo = SqlRepository(sqlite_url)
    await repo.create_schema()
    _, person = await repo.add_user("person")
    service, robot = await repo.add_user("robot", rate_limit="600/minute", rate_burst=12)
    await repo.close()
    assert service.rate_limit == "600/minute"
    with gateway(rate_limit="5/minute", rate_burst=2) as url:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            people = await burst_of(client, 4, {"Authorization": f"Bearer {person}"})
            robots = await burst_of(client, 12, {"Authorization": f"Bearer {robot}"})
    assert people == [503, 503, 429, 429]
    assert robots == [503] * 12
