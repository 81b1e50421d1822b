"""Start at login (an XDG autostart entry), and the pid file through which a desktop
shortcut reaches a running daemon (`whisp hotkey --toggle-running` sends SIGUSR1).
"""

from __future__ import annotations

import os
import signal
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

ENTRY_NAME = "whisptt-hotkey.desktop"
PID_NAME = "whisptt-hotkey.pid"


def config_home(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    configured = env.get("XDG_CONFIG_HOME")
    # The spec says a relative value is invalid and must be ignored.
    if configured and Path(configured).is_absolute():
        return Path(configured)
    return Path(env.get("HOME") or Path.home()) / ".config"


def desktop_exec(argv: Sequence[str]) -> str:
    """An `Exec=` value: arguments quoted as the Desktop Entry spec wants (double quotes;
    `"`, `` ` ``, `$` and `\\` escaped), and `%` doubled."""
    quoted = []
    for arg in argv:
        if arg and all(c.isalnum() or c in "-_./:=+,@" for c in arg):
            quoted.append(arg)
        else:
            escaped = "".join("\\" + c if c in '"`$\\' else c for c in arg)
            quoted.append(f'"{escaped}"')
    return " ".join(quoted).replace("%", "%%")


def entry_text(argv: Sequence[str]) -> str:
    return (
        "[Desktop Entry]\n"
        "Type=Application\n"
        "Name=WhisPTT hotkey\n"
        "Comment=Push-to-talk dictation: hold the hotkey, talk, get the text\n"
        f"Exec={desktop_exec(argv)}\n"
        "Terminal=false\n"
        "X-GNOME-Autostart-enabled=true\n"
    )


def install_autostart(argv: Sequence[str], env: Mapping[str, str] | None = None) -> Path:
    """Write the entry atomically; returns its path."""
    folder = config_home(env) / "autostart"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / ENTRY_NAME
    with tempfile.NamedTemporaryFile("w", dir=folder, delete=False, suffix=".tmp") as out:
        out.write(entry_text(argv))
    Path(out.name).replace(target)
    return target


def pid_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    runtime = env.get("XDG_RUNTIME_DIR")
    if runtime:
        return Path(runtime) / PID_NAME
    return Path(tempfile.gettempdir()) / f"{PID_NAME}.{os.getuid()}"  # per user in /tmp


def write_pid(path: Path) -> None:
    path.write_text(f"{os.getpid()}\n")


def remove_pid(path: Path) -> None:
    try:
        if path.read_text().strip() == str(os.getpid()):
            path.unlink()
    except OSError:
        pass


def signal_running(path: Path) -> int:
    """Send SIGUSR1 (a toggle press) to the daemon named in `path`; returns its pid."""
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError) as exc:
        raise ProcessLookupError(f"no running `whisp hotkey` (no pid file at {path})") from exc
    try:
        os.kill(pid, signal.SIGUSR1)
    except ProcessLookupError as exc:
        raise ProcessLookupError(f"`whisp hotkey` (pid {pid}, from {path}) is not running") from exc
    return pid
