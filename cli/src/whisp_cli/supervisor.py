"""`whisp up` keeps its stack serving: a service (or the private Redis) that exits is started
again, the others are never touched.

- A crash is fast when the run it ends had not been ready for `stable_s` (60 s); a run whose
  `/readyz` never answered 200 was not ready at all, so a slow start on a busy machine does
  not hide a crash loop. A crash after a run that was ready that long starts the count again.
- Backoff: the n-th fast crash in a row waits `first_delay_s * 2**(n-1)` (0.5 s, 1 s, 2 s,
  4 s, ... at most `max_delay_s`) before the restart, on the same port (Redis: same port and
  data, its AOF).
- Give up: at the `max_crashes`-th fast crash in a row (5) the service is left stopped, with
  a message naming its log; the others keep serving. Not so for Redis and the gateway: every
  service needs Redis, and without the gateway nothing can reach the stack (web page, REST,
  CLI), so giving up on either ends the stack (exit 1) instead of leaving one that looks up
  but serves nobody. Work already accepted is in Redis's AOF, and pending entries are
  reclaimed when the stack runs again.
- What a dead service leaves in its process group is killed before it starts again.
- `RestartPolicy(enabled=False)` is the fail-fast mode (`whisp up --no-restart`): the first
  exit ends the stack.
- The state file (`whisp_cli.stack_state`) is rewritten on every change, for `whisp status`.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx

from whisp_cli import stack_state
from whisp_cli.redis_server import RedisServerError
from whisp_cli.stack import Stack, StackError, signal_group

CRITICAL = {
    "redis": "every service needs Redis",
    "gateway": "without the gateway nothing can reach the stack",
}
"""Services whose loss ends the stack, and why."""
POLL_S = 0.2

State = Literal["starting", "ready", "restarting", "gave up"]


@dataclass(frozen=True)
class RestartPolicy:
    enabled: bool = True
    first_delay_s: float = 0.5
    max_delay_s: float = 10.0
    max_crashes: int = 5
    stable_s: float = 60.0
    """Ready this long, a run's crash is not a fast one (the count starts again)."""

    def delay(self, crashes: int) -> float:
        return float(min(self.first_delay_s * 2 ** (crashes - 1), self.max_delay_s))


@dataclass
class Watched:
    name: str
    state: State = "starting"
    restarts: int = 0
    fast_crashes: int = 0
    """Fast crashes in a row (see the module's notes)."""
    ready_since: float | None = None
    """When the current run first answered ready (None: not yet)."""
    restart_at: float | None = None
    last_exit: int | None = None


@dataclass(frozen=True)
class Event:
    kind: Literal["exited", "ready", "gave_up"]
    """exited: a restart is scheduled; ready: ready again after a restart; gave_up."""
    name: str
    message: str


def describe_exit(code: int | None) -> str:
    if code is None:
        return "failed to start"
    if code < 0:
        with_name = f" ({signal.Signals(-code).name})" if -code in signal.valid_signals() else ""
        return f"exited with code {code}{with_name}"
    return f"exited with code {code}"


class Supervisor:
    """Starts a `Stack` and, with `poll()` called every `POLL_S`, keeps it serving."""

    def __init__(
        self,
        stack: Stack,
        policy: RestartPolicy | None = None,
        on_event: Callable[[Event], None] | None = None,
        state_file: Path | None = None,
        gateway_url: str | None = None,
    ) -> None:
        self.stack = stack
        self.policy = policy or RestartPolicy()
        self.on_event = on_event or (lambda event: None)
        self.state_file = state_file
        self.gateway_url = gateway_url
        self.watched: dict[str, Watched] = {}
        self.started_at = stack_state.now_iso()
        self._client = httpx.Client(timeout=1.0)

    # --- starting ----------------------------------------------------------------------

    def start(self, timeout: float = 120.0) -> None:
        """Redis, then every service; returns once each is ready or given up on. A
        StackError when another `whisp up` runs on this data dir, when Redis cannot start, a
        critical service is given up on, or something is not ready after `timeout`."""
        self._refuse_a_second_stack()
        try:
            self.stack.start_redis()
        except RedisServerError as exc:
            raise StackError(f"redis: {exc}") from exc
        if self.stack.redis is not None:
            self.watched["redis"] = Watched("redis", state="ready", ready_since=time.monotonic())
        for spec in self.stack.specs:
            self.watched[spec.name] = Watched(spec.name)
            self.stack.spawn(spec)
        self.save()
        deadline = time.monotonic() + timeout
        while pending := self.pending():
            if time.monotonic() > deadline:
                raise StackError(f"not ready after {timeout:.0f}s: {', '.join(pending)}")
            self.poll()
            time.sleep(POLL_S)

    def pending(self) -> list[str]:
        """What is neither ready nor given up on."""
        return [w.name for w in self.watched.values() if w.state in ("starting", "restarting")]

    def _refuse_a_second_stack(self) -> None:
        if self.state_file is None:
            return
        state = stack_state.read_state(self.state_file)
        if state is not None and stack_state.supervisor_alive(state):
            raise StackError(
                f"WhisPTT already runs on {self.stack.data_dir} (whisp up, pid "
                f"{state['supervisor']['pid']}); see `whisp status`"
            )

    # --- watching ----------------------------------------------------------------------

    def poll(self) -> None:
        """Notice exits, restart what is due, probe what is starting; save on change."""
        now = time.monotonic()
        changed = False
        for watched in self.watched.values():
            if watched.state == "gave up":
                continue
            if watched.restart_at is None:
                code = self._exit_code(watched.name)
                if code is not None:
                    self._exited(watched, code, now)
                    changed = True
            elif now >= watched.restart_at:
                self._restart(watched, now)
                changed = True
        for watched in self.watched.values():
            if watched.state == "starting" and self._ready(watched.name):
                watched.state = "ready"
                watched.ready_since = time.monotonic()
                changed = True
                if watched.restarts:
                    self._ready_again(watched)
        if changed:
            self.save()

    def _exit_code(self, name: str) -> int | None:
        if name == "redis":
            return self.stack.redis.poll() if self.stack.redis else None
        return self.stack.processes[name].poll()

    def _ready(self, name: str) -> bool:
        try:
            return self._client.get(f"{self.stack.spec(name).url}/readyz").status_code == 200
        except httpx.HTTPError:
            return False

    def _exited(self, watched: Watched, code: int | None, now: float) -> None:
        name, how = watched.name, describe_exit(code)
        if not self.policy.enabled:
            raise StackError(f"{name} {how}")
        watched.last_exit = code
        if name != "redis":  # whatever it started goes with it (its group outlives it)
            signal_group(self.stack.processes[name], signal.SIGKILL)
        stable = (
            watched.ready_since is not None and now - watched.ready_since >= self.policy.stable_s
        )
        watched.fast_crashes = 1 if stable else watched.fast_crashes + 1
        watched.ready_since = None
        attempt = watched.fast_crashes
        if attempt >= self.policy.max_crashes:
            watched.state = "gave up"
            message = (
                f"{name} {how}; it exited {attempt} times in a row before staying up "
                f"{self.policy.stable_s:g} s: giving up on it"
            )
            if name in CRITICAL:
                raise StackError(f"{message}, and {CRITICAL[name]}; stopping the stack")
            self._emit("gave_up", watched, message + self._after_giving_up(name))
            return
        delay = self.policy.delay(attempt)
        watched.state = "restarting"
        watched.restart_at = now + delay
        attempts = f"attempt {attempt} of {self.policy.max_crashes - 1}"
        self._emit("exited", watched, f"{name} {how}; restarting in {delay:g} s ({attempts})")

    def _after_giving_up(self, name: str) -> str:
        log = self.stack.log_path(name)
        text = "; the other services keep serving" + (f" (its log: {log})" if log else "")
        workers = [w for w in self.watched.values() if w.name.startswith("transcription-")]
        if name.startswith("transcription-") and all(w.state == "gave up" for w in workers):
            text += ". No transcription worker is left: recordings wait in the queue"
        return text

    def _restart(self, watched: Watched, now: float) -> None:
        watched.restart_at = None
        watched.restarts += 1
        if watched.name != "redis":
            watched.state = "starting"
            self.stack.spawn(self.stack.spec(watched.name))
            return
        assert self.stack.redis is not None
        try:
            self.stack.redis.start()
        except RedisServerError as exc:
            self._emit("exited", watched, f"redis: {exc}")
            self._exited(watched, None, now)
            return
        watched.state = "ready"
        watched.ready_since = time.monotonic()
        self._ready_again(watched, ", with its data")

    def _ready_again(self, watched: Watched, more: str = "") -> None:
        where = f"{self._where(watched.name)}, restart {watched.restarts}"
        self._emit("ready", watched, f"{watched.name} is ready again ({where}){more}")

    def _where(self, name: str) -> str:
        if name == "redis":
            assert self.stack.redis is not None
            return f"pid {self.stack.redis.pid}, port {self.stack.redis.port}"
        return f"pid {self.stack.processes[name].pid}, port {self.stack.spec(name).port}"

    def _emit(self, kind: Literal["exited", "ready", "gave_up"], w: Watched, text: str) -> None:
        self.on_event(Event(kind, w.name, text))

    # --- what `whisp status` and the table show ---------------------------------------

    def pid(self, name: str) -> int | None:
        """The pid of what runs now (None: given up on, waiting to restart, external)."""
        watched = self.watched.get(name)
        if watched is None or watched.state in ("gave up", "restarting"):
            return None
        if name == "redis":
            return self.stack.redis.pid if self.stack.redis else None
        return self.stack.processes[name].pid

    def services(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        redis = self.stack.redis
        rows.append(
            {"name": "redis", "pid": self.pid("redis"), "port": redis.port if redis else None,
             "url": self.stack.redis_url, "external": redis is None}
        )  # fmt: skip
        for spec in self.stack.specs:
            rows.append({"name": spec.name, "pid": self.pid(spec.name), "port": spec.port,
                         "url": spec.url, "ready_url": f"{spec.url}/readyz"})  # fmt: skip
        for row in rows:
            watched = self.watched.get(row["name"])
            row["state"] = watched.state if watched else "external"
            row["restarts"] = watched.restarts if watched else 0
            row["last_exit_code"] = watched.last_exit if watched else None
            pid = row["pid"]
            row["start_ticks"] = None if pid is None else stack_state.process_start_ticks(pid)
        return rows

    def state(self) -> dict[str, Any]:
        return {
            "version": stack_state.VERSION,
            "supervisor": {
                "pid": os.getpid(),
                "start_ticks": stack_state.process_start_ticks(os.getpid()),
            },
            "started_at": self.started_at,
            "updated_at": stack_state.now_iso(),
            "gateway_url": self.gateway_url,
            "data_dir": str(self.stack.data_dir),
            "log_dir": None if self.stack.log_dir is None else str(self.stack.log_dir),
            "services": self.services(),
        }

    def save(self) -> None:
        if self.state_file is not None:
            stack_state.write_state(self.state_file, self.state())

    def close(self) -> None:
        """After `stack.stop()`: the state file goes (only if it is this process's)."""
        self._client.close()
        if self.state_file is not None:
            stack_state.remove_state(self.state_file, os.getpid())
