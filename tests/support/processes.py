"""WhisPTT's processes for tests, started the way `whisp up` starts them.

- `Services`: service processes (`python -m whisp_gateway`, `whisp_transcription`, ...)
  spawned by the launcher itself (`whisp_cli.stack.Stack`): each in its own session, with
  the test's own environment on top of what `whisp up` gives it, logging to
  `LOG_DIR/<name>.log`; started when every `/readyz` answers 200. On exit, and on every
  failure path (a service that dies or never gets ready, a spawn that fails part way), each
  child's whole process group gets SIGTERM, then SIGKILL after a timeout. Faults on purpose:
  `kill(name)` (SIGKILL the group, as a crash), `restart(name)` (the same spec again: same
  port, a new PID), `add(spec, ready=False)` (one more, e.g. one that never gets ready).
- `service(kind, ...)`: the launcher's `ServiceSpec` for one service on a free port.
- `WhispUp`: `whisp up` itself as a child process, as a person runs it: wait for its
  banner, Ctrl+C (SIGINT) to stop; if it does not stop in time, it and every service it
  started are killed.
- `log_tails(folder)`: the last lines of every log in a folder, for a failure message.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx

from whisp_cli.redis_server import free_port
from whisp_cli.stack import (
    STOP_TIMEOUT_S,
    ServiceSpec,
    Stack,
    StackError,
    plan,
    signal_group,
    stop_processes,
)

READY_TIMEOUT_S = 60.0
UP_BANNER = "WhisPTT is up"


class ServiceError(AssertionError):
    """A process did not start (or stop) as a test needs; the message carries its logs."""


def log_tails(folder: Path, lines: int = 15) -> str:
    """The last `lines` lines of every `*.log` in `folder`, each under its name."""
    parts = []
    for log in sorted(folder.glob("*.log")):
        text = log.read_text(errors="replace").splitlines()[-lines:]
        parts.append(f"--- {log.name}\n" + "\n".join(text))
    return "\n".join(parts)


# --- single services, through the launcher ---------------------------------------------


@cache
def _kinds() -> dict[str, ServiceSpec]:
    """What `whisp up` runs, by kind: module and config section come from its plan."""
    return {spec.name.rstrip("-0123456789"): spec for spec in plan(1, 0)}


def service(
    kind: str,
    *,
    name: str | None = None,
    port: int | None = None,
    env: Mapping[str, str] | None = None,
) -> ServiceSpec:
    """The spec of one `kind` of service ("audio", "transcription", "local-llm", "agents",
    "gateway") as `whisp up` plans it, named `name` (default: the kind), on `port` (default:
    a free one), with `env` as its only extra environment (no sibling is wired in)."""
    template = _kinds()[kind]
    return ServiceSpec(
        name or kind,
        template.module,
        template.section,
        port or free_port(),
        tuple((env or {}).items()),
    )


@dataclass(frozen=True)
class ServiceProcess:
    """One running service: where it listens, its process, its log."""

    spec: ServiceSpec
    process: subprocess.Popen[bytes]
    log: Path
    stop_timeout: float = STOP_TIMEOUT_S

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def port(self) -> int:
        return self.spec.port

    @property
    def url(self) -> str:
        return self.spec.url

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return self.process.poll()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self, timeout: float | None = None) -> int:
        """SIGTERM its process group, SIGKILL after `timeout` (default `stop_timeout`); its
        exit code (uvicorn re-raises SIGTERM after a graceful shutdown: -15 is clean)."""
        stop_processes([self.process], self.stop_timeout if timeout is None else timeout)
        return self.process.returncode


class Services:
    """Service processes for one test (or module): `with Services([...], log_dir=...) as s`.

    Each starts from this process's environment without `unset`, plus what the launcher
    sets (REDIS_URL when `redis_url` is given, its HOST/PORT, data folders under
    `data_dir`, default `log_dir`), plus its spec's `env`, which wins.
    """

    def __init__(
        self,
        specs: Iterable[ServiceSpec],
        *,
        log_dir: Path,
        redis_url: str | None = None,
        data_dir: Path | None = None,
        cwd: Path | None = None,
        unset: Iterable[str] = (),
        ready_timeout: float = READY_TIMEOUT_S,
        stop_timeout: float = STOP_TIMEOUT_S,
    ) -> None:
        self.specs = list(specs)
        self.log_dir = log_dir
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        skip = set(unset)
        self.stack = Stack(
            [],
            redis_url=redis_url,
            data_dir=data_dir or log_dir,
            log_dir=log_dir,
            environ={k: v for k, v in os.environ.items() if k not in skip},
            cwd=cwd,
        )
        self._running: dict[str, ServiceProcess] = {}
        self.ready_s = 0.0
        """Seconds from the first spawn until every service was ready."""

    def start(self) -> Self:
        """Spawn every service, then wait until each answers `/readyz`. If anything fails
        (a spawn, a service exiting, the timeout), every one started so far is stopped."""
        started = time.monotonic()
        try:
            for spec in self.specs:
                proc = self.stack.spawn(spec)
                log = self.stack.log_path(spec.name)
                assert log is not None
                self._running[spec.name] = ServiceProcess(spec, proc, log, self.stop_timeout)
            self.stack.wait_ready(self.ready_timeout)
        except StackError as exc:
            self.stop()
            raise ServiceError(f"{exc}\n{log_tails(self.log_dir, 40)}") from exc
        except BaseException:
            self.stop()
            raise
        self.ready_s = time.monotonic() - started
        return self

    def stop(self) -> None:
        """Every process group: SIGTERM, SIGKILL after `stop_timeout`; safe to call twice."""
        self.stack.stop(self.stop_timeout)

    def kill(self, name: str) -> int:
        """SIGKILL `name`'s whole process group, as a crash would (no shutdown: what it had
        in hand stays pending); waits for it; its exit code (-9)."""
        proc = self._running[name].process
        signal_group(proc, signal.SIGKILL)
        return proc.wait()

    def restart(self, name: str, timeout: float | None = None) -> ServiceProcess:
        """`name` again from its spec (same port and environment, a new PID) once it has
        ended (`kill` or `stop` it first); returns when its `/readyz` answers 200."""
        old = self._running[name]
        if old.returncode is None:
            raise ServiceError(f"{name} is still running (pid {old.pid}): stop or kill it first")
        return self.add(old.spec, timeout=timeout)

    def add(
        self, spec: ServiceSpec, *, ready: bool = True, timeout: float | None = None
    ) -> ServiceProcess:
        """Spawn `spec` beside the others (`stop()` stops it with them); with `ready`, wait
        until its `/readyz` answers 200 (a ServiceError with its log if it exits first or
        takes longer than `timeout`, default `ready_timeout`)."""
        proc = self.stack.spawn(spec)
        log = self.stack.log_path(spec.name)
        assert log is not None
        running = self._running[spec.name] = ServiceProcess(spec, proc, log, self.stop_timeout)
        if ready:
            self.wait_ready(spec.name, timeout)
        return running

    def wait_ready(self, name: str, timeout: float | None = None) -> float:
        """Until `name`'s `/readyz` answers 200; the seconds it took (ServiceError, with its
        log, if it exits first or is not ready within `timeout`)."""
        service = self._running[name]
        timeout = self.ready_timeout if timeout is None else timeout
        started = time.monotonic()
        with httpx.Client(timeout=1.0) as client:
            while True:
                if service.returncode is not None:
                    problem = f"{name} exited with code {service.returncode}"
                    break
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(f"{service.url}/readyz").status_code == 200:
                        return time.monotonic() - started
                if time.monotonic() - started > timeout:
                    problem = f"{name} not ready after {timeout:.0f}s"
                    break
                time.sleep(0.1)
        tail = "\n".join(service.log_text().splitlines()[-40:])
        raise ServiceError(f"{problem}\n--- {service.log.name}\n{tail}")

    def __getitem__(self, name: str) -> ServiceProcess:
        return self._running[name]

    def __iter__(self) -> Iterator[ServiceProcess]:
        return iter(self._running.values())

    def __len__(self) -> int:
        return len(self._running)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# --- `whisp up` as a person runs it ------------------------------------------------------


def _descendants(pid: int) -> list[int]:
    """Every live process below `pid`, from /proc (read before `pid` dies: orphans get
    another parent)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_tree(proc: subprocess.Popen[str] | subprocess.Popen[bytes]) -> None:
    """SIGKILL a supervisor that leads its own session, its group, and the process group of
    everything it started (its services run in sessions of their own)."""
    below = _descendants(proc.pid)
    groups = {proc.pid}
    for pid in below:
        with contextlib.suppress(ProcessLookupError):
            groups.add(os.getpgid(pid))
    groups.discard(os.getpgrp())  # never this test process's own group
    for group in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signal.SIGKILL)
    proc.wait()


class WhispUp:
    """`whisp up --workers N --port P --data-dir D --log-dir L` as a child process.

    `start()` spawns it (in its own session); everything it prints is collected in
    `output`; `wait_up()` returns the banner up to "WhisPTT is up"; `stop()` is Ctrl+C and
    a wait, after which it and all it started are killed. `with WhispUp(...) as up:` does
    start + wait_up, and stop on the way out (and when it does not come up).
    """

    def __init__(
        self,
        data_dir: Path,
        log_dir: Path,
        *,
        workers: int = 1,
        port: int | None = None,
        env: Mapping[str, str] | None = None,
        unset: Iterable[str] = (),
        cwd: Path | None = None,
        up_timeout: float = 180.0,
        stop_timeout: float = 60.0,
    ) -> None:
        self.data_dir = data_dir
        self.log_dir = log_dir
        self.workers = workers
        self.port = port or free_port()
        skip = set(unset)
        self.env = {k: v for k, v in os.environ.items() if k not in skip}
        # The service table on one line each; the Wyoming server on a free port (10300 is
        # the user's: stacks of one test session must not fight over it).
        self.env |= {"COLUMNS": "200", "WHISP_WEB__WYOMING__PORT": "0", **(env or {})}
        self.cwd = cwd
        self.up_timeout = up_timeout
        self.stop_timeout = stop_timeout
        self.proc: subprocess.Popen[str] | None = None
        self.banner = ""
        self.killed = False
        """True when it had to be killed: it did not stop within `stop_timeout`."""
        self._lines: list[str] = []
        self._changed = threading.Condition()
        self._reader: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The gateway's base URL (no trailing slash)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None, "not started"
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    @property
    def output(self) -> str:
        """Everything it printed so far."""
        with self._changed:
            return "".join(self._lines)

    def start(self) -> Self:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "whisp_cli.main", "up", "--workers", str(self.workers),
             "--port", str(self.port), "--data-dir", str(self.data_dir),
             "--log-dir", str(self.log_dir)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=self.env,
            cwd=self.cwd,
            start_new_session=True,
        )  # fmt: skip
        # Read all the time, so the supervisor can never block on a full pipe.
        self._reader = threading.Thread(target=self._read, args=(self.proc,), daemon=True)
        self._reader.start()
        return self

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            with self._changed:
                self._lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._lines.append("")  # end of output
            self._changed.notify_all()

    def wait_up(self, timeout: float | None = None) -> str:
        """The banner, once it ends in "WhisPTT is up"; a ServiceError (with its output and
        the services' logs) if it exits first or takes longer than `timeout`."""
        timeout = self.up_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for n, line in enumerate(self._lines):
                    if UP_BANNER in line:
                        self.banner = "".join(self._lines[: n + 1])
                        return self.banner
                if self._lines and self._lines[-1] == "":  # output ended: it exited
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._changed.wait(min(left, 1.0))
        if self._ended():
            assert self.proc is not None
            problem = f"whisp up exited ({self.proc.wait()})"
        else:
            problem = f"whisp up not up in {timeout:.0f}s"
        raise ServiceError(f"{problem}:\n{self.output}\n{log_tails(self.log_dir)}")

    def _ended(self) -> bool:
        with self._changed:
            return bool(self._lines) and self._lines[-1] == ""

    def wait(self, timeout: float) -> int:
        """Until it exits by itself (subprocess.TimeoutExpired if it does not); its code."""
        assert self.proc is not None, "not started"
        code = self.proc.wait(timeout=timeout)
        self._join()
        return code

    def stop(self, timeout: float | None = None) -> int:
        """Ctrl+C (SIGINT), then wait up to `timeout` (default `stop_timeout`) for it to stop
        its services; past that, SIGKILL it and every process group it started. Its exit
        code (-9 when killed)."""
        assert self.proc is not None, "not started"
        timeout = self.stop_timeout if timeout is None else timeout
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.killed = True
                kill_tree(self.proc)
        self._join()
        return self.proc.returncode

    def _join(self) -> None:
        if self._reader is not None:
            self._reader.join(timeout=5)

    def __enter__(self) -> Self:
        self.start()
        try:
            self.wait_up()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.proc is not None:
            self.stop()
