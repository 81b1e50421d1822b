"""PostgreSQL for the repository tests: a reachable `DATABASE_URL`, else a private server.

The private server is Debian's `initdb` + `pg_ctl` in a temporary folder, on a free port,
listening on 127.0.0.1 only (never the machine's own 5432). As root the binaries run as the
`postgres` OS user (PostgreSQL refuses to run as root). Every test gets its own database
(`whisp_test_<random>`), created before and dropped (FORCE) after.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import pwd
import shlex
import shutil
import signal
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.engine import make_url

from whisp_cli.redis_server import free_port


class PostgresUnavailable(RuntimeError):
    pass


def _bin_dir() -> Path:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise PostgresUnavailable("no initdb: install Debian's postgresql package")


def _asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class PostgresCluster:
    """A throwaway cluster; `start()` returns its admin URL, `stop()` removes every file."""

    def __init__(self) -> None:
        self.bin = _bin_dir()
        self.root = Path(tempfile.mkdtemp(prefix="whisp-pg-"))
        self.data = self.root / "data"
        self.port = 0
        self._as_postgres: list[str] = []
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
            self._as_postgres = (
                ["runuser", "-u", "postgres", "--"]
                if shutil.which("runuser")
                else ["su", "postgres", "-s", "/bin/sh", "-c"]
            )

    def _run(self, *args: str) -> None:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if self._as_postgres[:1] == ["su"]:
            cmd = [*self._as_postgres, shlex.join(cmd)]
        else:
            cmd = [*self._as_postgres, *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0:
            log = self.root / "server.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise PostgresUnavailable(
                f"{args[0]} failed ({done.returncode}): {done.stderr or done.stdout}\n{tail}"
            )

    def start(self) -> str:
        self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
            "--no-sync", "--locale=C",
        )  # fmt: skip
        for attempt in range(3):  # a free port can be taken between probe and bind
            self.port = free_port()
            options = (
                f"-k {self.root} -p {self.port} -c listen_addresses=127.0.0.1 "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            )
            try:
                self._run(
                    "pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"),
                    "-w", "-t", "30", "-o", options, "start",
                )  # fmt: skip
                break
            except PostgresUnavailable:
                if attempt == 2:
                    raise
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        """`pg_ctl stop`; if that fails (or the server hangs), SIGKILL the postmaster's
        process group (pg_ctl starts it in a session of its own, its backends with it)."""
        try:
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            self._kill_postmaster()
            shutil.rmtree(self.root, ignore_errors=True)

    def _kill_postmaster(self) -> None:
        try:
            pid = int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return  # stopped cleanly (pg_ctl removes the file), or never started
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)


class PostgresProvider:
    """Starts nothing until a test asks for a PostgreSQL database."""

    def __init__(self) -> None:
        self.cluster: PostgresCluster | None = None
        self.admin_url: str | None = None

    async def _admin(self) -> str:
        if self.admin_url is None:
            external = os.environ.get("DATABASE_URL", "")
            if external.startswith("postgres") and await _reachable(external):
                self.admin_url = external
            else:
                self.cluster = PostgresCluster()
                self.admin_url = await asyncio.to_thread(self.cluster.start)
        return self.admin_url

    @asynccontextmanager
    async def database(self) -> AsyncIterator[str]:
        """A fresh database for one test; its URL in the form people write."""
        admin = await self._admin()
        name = f"whisp_test_{uuid.uuid4().hex[:12]}"
        conn = await asyncpg.connect(_asyncpg_dsn(admin))
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        try:
            yield make_url(admin).set(database=name).render_as_string(hide_password=False)
        finally:
            conn = await asyncpg.connect(_asyncpg_dsn(admin))
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await conn.close()

    def stop(self) -> None:
        if self.cluster is not None:
            self.cluster.stop()


async def _reachable(url: str) -> bool:
    try:
        conn = await asyncpg.connect(_asyncpg_dsn(url), timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    await conn.close()
    return True
