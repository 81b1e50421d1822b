"""The running stack's state file (`DATA_DIR/whisp-up.json`), for `whisp status`.

`whisp up`'s supervisor rewrites it (atomically) whenever something changes: its own pid,
and per service the pid, port, URL, state and restart count. It removes the file when it
stops cleanly; a file whose supervisor is gone (killed, machine rebooted) is stale, and
`whisp status` says so instead of probing ports that may now belong to something else.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import redis

STATE_FILE = "whisp-up.json"
VERSION = 1


def state_path(data_dir: Path) -> Path:
    return data_dir / STATE_FILE


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def process_start_ticks(pid: int) -> int | None:
    """When `pid` started (clock ticks since boot, /proc/PID/stat field 22): with the pid it
    names one process, even after the pid is reused. None when there is no such live process
    (a zombie counts as gone). Without /proc (not Linux): 0 for any pid that exists."""
    if not Path("/proc/self/stat").exists():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return 0
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": field 3 onwards
    return None if fields[0] in ("Z", "X") else int(fields[19])


def pid_alive(pid: int | None) -> bool:
    return pid is not None and process_start_ticks(pid) is not None


def write_state(path: Path, state: dict[str, Any]) -> None:
    """Replace the file at once (write a sibling, rename), so a reader never sees half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    tmp.replace(path)


def read_state(path: Path) -> dict[str, Any] | None:
    """The state, or None when there is none (or it is unreadable)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("version") == VERSION else None


def supervisor_alive(state: dict[str, Any]) -> bool:
    """Whether the `whisp up` that wrote `state` still runs (same pid, same start time)."""
    sup = state.get("supervisor") or {}
    pid, ticks = sup.get("pid"), sup.get("start_ticks")
    if not isinstance(pid, int):
        return False
    now = process_start_ticks(pid)
    return now is not None and (ticks is None or now == ticks)


def remove_state(path: Path, pid: int | None = None) -> None:
    """Delete the file, only if it is this supervisor's (another may have taken over)."""
    state = read_state(path)
    if state is not None and (pid is None or (state.get("supervisor") or {}).get("pid") == pid):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


@dataclass(frozen=True)
class Health:
    name: str
    pid: int | None
    port: int | None
    state: str
    """What the supervisor last saw: starting, ready, restarting, gave up."""
    health: str
    """What answers now: ready, not ready (<failed checks>), down."""
    restarts: int
    ready: bool


def probe(service: dict[str, Any], client: httpx.Client) -> tuple[bool, str]:
    """(ready, what answered) for one service of the state file: `/readyz` for a service,
    PING for Redis."""
    url = str(service.get("url") or "")
    if url.startswith("redis://"):
        conn = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        try:
            return (True, "ready") if conn.ping() else (False, "not ready")
        except redis.RedisError as exc:
            return False, f"down ({type(exc).__name__})"
        finally:
            conn.close()
    try:
        response = client.get(f"{url}/readyz")
    except httpx.HTTPError as exc:
        return False, f"down ({type(exc).__name__})"
    if response.status_code == 200:
        return True, "ready"
    try:
        failed = [k for k, ok in response.json().get("checks", {}).items() if not ok]
    except ValueError:
        failed = []
    return False, f"not ready ({', '.join(failed) or response.status_code})"


def health(state: dict[str, Any], timeout: float = 2.0) -> list[Health]:
    """Every service of a live stack's state, probed now."""
    rows = []
    with httpx.Client(timeout=timeout) as client:
        for service in state.get("services", []):
            ready, answer = probe(service, client)
            rows.append(
                Health(
                    name=service["name"],
                    pid=service.get("pid"),
                    port=service.get("port"),
                    state=service.get("state", "?"),
                    health=answer,
                    restarts=int(service.get("restarts", 0)),
                    ready=ready,
                )
            )
    return rows


def left_behind(state: dict[str, Any]) -> list[tuple[str, int]]:
    """(name, pid) of the services a stale state names that still run (same start time)."""
    found = []
    for service in state.get("services", []):
        pid, ticks = service.get("pid"), service.get("start_ticks")
        now = process_start_ticks(pid) if isinstance(pid, int) else None
        if now is not None and (ticks is None or now == ticks):
            found.append((service["name"], pid))
    return found
