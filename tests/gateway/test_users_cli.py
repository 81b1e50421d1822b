"""`whisp users add|list|remove` as a person runs it, then the printed token at a gateway."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.gateway.conftest import GatewayFactory, add_users
from whisp_gateway.repository import SqlRepository

pytestmark = pytest.mark.e2e  # each command is a fresh Python process (~1-3 s)

REPO_ROOT = Path(__file__).resolve().parents[2]


def start(tmp_path: Path, database_url: str, *args: str) -> subprocess.Popen[str]:
    config = tmp_path / "config.yaml"
    config.write_text("mode: local\nweb:\n  host: 127.0.0.1\n")
    env = {
        **os.environ,
        "WHISP_CONFIG": str(config),
        "DATABASE_URL": database_url,
        "COLUMNS": "200",
    }
    env.pop("WHISP_WEB__DATABASE_URL", None)
    return subprocess.Popen(
        [sys.executable, "-m", "whisp_cli.main", "users", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def whisp(tmp_path: Path, database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return finish(start(tmp_path, database_url, *args))


def finish(proc: subprocess.Popen[str]) -> subprocess.CompletedProcess[str]:
    out, err = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def printed_token(output: str) -> str:
    tokens = [line.strip() for line in output.splitlines() if line.strip().startswith("wsp_")]
    assert len(tokens) == 1, output
    return tokens[0]


async def test_users_commands_and_the_token_they_print(
    tmp_path: Path, sqlite_url: str, gateway: GatewayFactory
) -> None:
    """SQLite here: the repository tests cover PostgreSQL, and every command costs seconds."""
    database_url = sqlite_url.replace("+aiosqlite", "")
    # Commands that do not depend on each other run side by side (each is a new process).
    adding = start(tmp_path, database_url, "add", "alice")
    missing = finish(start(tmp_path, database_url, "remove", "nobody"))
    added = finish(adding)
    assert added.returncode == 0, added.stderr
    token = printed_token(added.stdout)
    assert "not shown again" in added.stdout
    assert missing.returncode == 1
    assert "No user named 'nobody'" in missing.stderr

    bob_token = (await add_users(database_url, "bob"))["bob"]
    adding_again = start(tmp_path, database_url, "add", "alice")
    listed = finish(start(tmp_path, database_url, "list"))
    again = finish(adding_again)
    assert again.returncode == 1
    assert "already exists" in again.stderr
    assert listed.returncode == 0, listed.stderr
    assert "alice" in listed.stdout
    assert "bob" in listed.stdout
    assert token not in listed.stdout

    with gateway(database_url=database_url) as url:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            assert (await client.get("/api/me")).status_code == 401
            me = await client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
            assert me.status_code == 200
            assert me.json()["user"]["name"] == "alice"

            removed = whisp(tmp_path, database_url, "remove", "alice")
            assert removed.returncode == 0, removed.stderr
            refused = await client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
            assert refused.status_code == 401
            bob = await client.get("/api/me", headers={"Authorization": f"Bearer {bob_token}"})
            assert bob.json()["user"]["name"] == "bob"


async def test_add_a_service_account_with_its_own_rate_limit(
    tmp_path: Path, sqlite_url: str
) -> None:
    bad = whisp(tmp_path, sqlite_url, "add", "robot", "--rate-limit", "lots")
    assert bad.returncode == 2 and "must look like '100/hour'" in bad.stderr
    done = whisp(tmp_path, sqlite_url, "add", "robot", "--rate-limit", "5000/hour", "--burst", "50")
    assert done.returncode == 0, done.stderr
    assert "limited to 5000/hour" in done.stdout
    repo = SqlRepository(sqlite_url)
    try:
        user = await repo.user_for_token(printed_token(done.stdout))
    finally:
        await repo.close()
    assert user is not None and (user.rate_limit, user.rate_burst) == ("5000/hour", 50)
