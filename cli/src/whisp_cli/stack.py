"""`whisp up`: the whole stack as separate processes on this machine.

Children run in their own sessions, so a terminal's Ctrl+C reaches only this
supervisor, which then stops the services first (SIGTERM, so in-flight work
finishes or stays pending) and Redis last, and leaves no process behind.
`whisp_cli.supervisor` restarts the ones that exit on their own.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from whisp_cli.redis_server import RedisServer, dies_with_parent, free_port

STOP_TIMEOUT_S = 20.0
WYOMING_PORT = 10300
"""Home Assistant's usual port for a Wyoming speech-to-text server."""


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    module: str
    section: str
    port: int
    env: tuple[tuple[str, str], ...] = ()
    """Extra environment for this process only (e.g. where a sibling listens)."""
    doors: tuple[tuple[str, str], ...] = ()
    """(name, URI) of what else it serves besides HTTP, for the service table."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def plan(workers: int, gateway_port: int, wyoming_port: int | None = None) -> list[ServiceSpec]:
    """The processes `whisp up` runs, each told where its siblings listen. Only the gateway's
    ports are fixed: HTTP is the one door for people and the CLI, `wyoming_port` (when
    given) Home Assistant's.

    `local-llm` is the offline default model server the agent service calls (it idles when
    `agents.local_llm.enabled` is false)."""
    audio, llm, agents = free_port(), free_port(), free_port()
    gateway_url = f"http://127.0.0.1:{gateway_port}"
    return [
        ServiceSpec("audio", "whisp_audio", "audio", audio,
                    env=(("WHISP_AUDIO__AUDIO_URI", "file"),)),
        *(
            ServiceSpec(
                f"transcription-{i + 1}", "whisp_transcription", "transcription", free_port()
            )
            for i in range(workers)
        ),
        ServiceSpec("local-llm", "whisp_agent.local_llm", "agents__local_llm", llm),
        ServiceSpec(
            "agents", "whisp_agent", "agents", agents,
            env=(
                ("WHISP_AGENTS__LOCAL_LLM__PORT", str(llm)),
                ("WHISP_AGENTS__GATEWAY__URL", gateway_url),
            ),
        ),
        ServiceSpec(
            "gateway", "whisp_gateway", "web", gateway_port,
            env=(
                ("WHISP_WEB__AUDIO_SERVICE_URL", f"http://127.0.0.1:{audio}"),
                ("WHISP_WEB__AGENT_SERVICE_URL", f"http://127.0.0.1:{agents}"),
                *((("WHISP_WEB__WYOMING__PORT", str(wyoming_port)),) if wyoming_port else ()),
            ),
            doors=(("wyoming", f"tcp://127.0.0.1:{wyoming_port}"),) if wyoming_port else (),
        ),
    ]  # fmt: skip


def wyoming_port(requested: int | None) -> tuple[int, str | None]:
    """The Wyoming server's port and, when it is not the one asked for, why. Unasked, it is
    10300 if that is free, else any free port (another Wyoming server, or another stack,
    may hold 10300); 0 is any free port; a port asked for and taken is a StackError."""
    if requested is None:
        if _free(WYOMING_PORT):
            return WYOMING_PORT, None
        port = free_port()
        return port, f"port {WYOMING_PORT} is in use (another Wyoming server?): using {port}"
    if requested == 0:
        return free_port(), None
    if not _free(requested):
        raise StackError(f"the Wyoming port {requested} is in use; choose another (--wyoming-port)")
    return requested, None


def _free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio's servers do
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


@dataclass
class Stack:
    specs: list[ServiceSpec]
    redis_url: str | None = None
    data_dir: Path = Path("data")
    log_dir: Path | None = None
    redis: RedisServer | None = None
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    environ: Mapping[str, str] | None = None
    """The environment every child starts from (`os.environ` when None)."""
    cwd: Path | None = None
    """The children's working directory (this process's when None)."""
    die_with_parent: bool = False
    """Children get SIGTERM when this process dies, even by SIGKILL (Linux)."""

    def start(self, timeout: float = 120.0) -> None:
        self.start_redis()
        for spec in self.specs:
            self.spawn(spec)
        self.wait_ready(timeout)

    def start_redis(self) -> None:
        """The private redis-server (AOF, `appendfsync always`, in DATA_DIR/redis), unless a
        `redis_url` was given."""
        if self.redis_url is None:
            self.redis = RedisServer(
                data_dir=self.data_dir / "redis",
                persist=True,
                log_file=self.log_path("redis"),
                die_with_parent=self.die_with_parent,
            ).start()
            self.redis_url = self.redis.url

    def spec(self, name: str) -> ServiceSpec:
        return next(spec for spec in self.specs if spec.name == name)

    def log_path(self, name: str) -> Path | None:
        """Where the service `name` logs (None: it shares this process's output)."""
        return None if self.log_dir is None else self.log_dir / f"{name}.log"

    def spawn(self, spec: ServiceSpec) -> subprocess.Popen[bytes]:
        """Start one service in its own session (a `spec` not yet planned joins `specs`);
        `stop()` stops it with the others."""
        env = dict(os.environ if self.environ is None else self.environ)
        prefix = f"WHISP_{spec.section.upper()}__"
        if self.redis_url is not None:
            env["REDIS_URL"] = self.redis_url
        env.update(
            {
                f"{prefix}HOST": "127.0.0.1",
                f"{prefix}PORT": str(spec.port),
                "WHISP_AUDIO__DATA_DIR": str(self.data_dir / "audio"),
                # Workers read recordings straight from the audio service's folder.
                "WHISP_TRANSCRIPTION__AUDIO_DIR": str(self.data_dir / "audio"),
                "WHISP_AGENTS__DATA_DIR": str(self.data_dir / "agents"),
                "WHISP_WEB__DATABASE_URL": f"sqlite+aiosqlite:///{self.data_dir / 'gateway.db'}",
                **dict(spec.env),
            }
        )
        log = self.log_path(spec.name)
        out = None
        if log is not None:
            log.parent.mkdir(parents=True, exist_ok=True)
            out = log.open("ab")
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", spec.module],
                env=env,
                cwd=self.cwd,
                stdout=out,
                stderr=subprocess.STDOUT if out else None,
                start_new_session=True,
                preexec_fn=dies_with_parent() if self.die_with_parent else None,  # noqa: PLW1509
            )
        finally:
            if out is not None:
                out.close()  # the child holds its own copy
        if spec not in self.specs:
            self.specs.append(spec)
        self.processes[spec.name] = proc
        return proc

    def wait_ready(self, timeout: float) -> None:
        pending = {spec.name: spec for spec in self.specs}
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=1.0) as client:
            while pending:
                self.raise_if_dead()
                for name, spec in list(pending.items()):
                    try:
                        if client.get(f"{spec.url}/readyz").status_code == 200:
                            del pending[name]
                    except httpx.HTTPError:
                        pass
                if time.monotonic() > deadline:
                    raise StackError(f"not ready after {timeout:.0f}s: {', '.join(pending)}")
                time.sleep(0.2)

    def raise_if_dead(self) -> None:
        for name, proc in self.processes.items():
            code = proc.poll()
            if code is not None:
                raise StackError(f"{name} exited with code {code}")

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Every service's process group (SIGTERM, SIGKILL after `timeout`), then Redis."""
        stop_processes(self.processes.values(), timeout)
        self.processes.clear()
        if self.redis is not None:
            self.redis.close()
            self.redis = None


def signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    """`sig` to the whole process group a child leads (it runs in its own session); nothing
    when the group is gone."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def stop_processes(
    procs: Iterable[subprocess.Popen[bytes]], timeout: float = STOP_TIMEOUT_S
) -> None:
    """SIGTERM each child's process group at once, wait up to `timeout` in all, SIGKILL the
    groups still there; whatever is left in a group once its leader is gone goes too."""
    procs = list(procs)
    for proc in procs:
        if proc.poll() is None:
            signal_group(proc, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            signal_group(proc, signal.SIGKILL)
            proc.wait()
        signal_group(proc, signal.SIGKILL)


class StackError(RuntimeError):
    pass
