"""Getting the words to the person: clipboard, typing into the focused window, desktop
notifications, a short tone.

Each channel is optional and may be missing on a given desktop (no xclip, no
notification daemon, no sound card); a missing one is reported once and then skipped,
never allowed to stop the transcript from reaching the others.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from whisp_shared.logs import get_logger

log = get_logger(__name__)
TOOL_TIMEOUT_S = 10.0


def _log_warning(message: str) -> None:
    log.warning(message)


def session_bus_present() -> bool:
    """notify-send talks D-Bus; without a session bus it would try to autolaunch one."""
    if os.environ.get("DBUS_SESSION_BUS_ADDRESS"):
        return True
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    return runtime is not None and (Path(runtime) / "bus").exists()


@dataclass
class Delivery:
    clipboard: bool = True
    type_text: bool = False
    notify: bool = True
    sound: bool = False
    warn: Callable[[str], None] = field(default=_log_warning)
    _warned: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _once(self, key: str, message: str) -> None:
        with self._lock:
            if key in self._warned:
                return
            self._warned.add(key)
        self.warn(message)

    # ------------------------------------------------------------------ channels

    def copy(self, text: str) -> bool:
        if not self.clipboard:
            return False
        try:
            import pyperclip  # type: ignore[import-untyped]  # noqa: PLC0415

            pyperclip.copy(text)
        except Exception as exc:  # PyperclipException: no xclip/xsel, no display
            self._once("clipboard", f"cannot use the clipboard ({exc}); install xclip or xsel")
            return False
        return True

    def type_into_focus(self, text: str) -> bool:
        """xdotool types through XTEST, which every X client accepts (pynput's synthetic
        events are ignored by some, e.g. a default xterm)."""
        if not self.type_text:
            return False
        xdotool = shutil.which("xdotool")
        if xdotool is None:
            self._once("type", "cannot type the transcript: install xdotool")
            return False
        return self._run("type", [xdotool, "type", "--clearmodifiers", "--delay", "2", "--", text])

    def notify_desktop(self, title: str, body: str = "", urgent: bool = False) -> bool:
        if not self.notify:
            return False
        notify_send = shutil.which("notify-send")
        if notify_send is None:
            self._once("notify", "no desktop notifications: install libnotify-bin (notify-send)")
            return False
        if not session_bus_present():
            self._once("notify", "no desktop notifications: no D-Bus session bus here")
            return False
        args = [notify_send, "--app-name=WhisPTT", "--expire-time=4000"]
        if urgent:
            args.append("--urgency=critical")
        return self._run("notify", [*args, "--", title, body[:500]])

    def tone(self, rising: bool) -> None:
        """A 120 ms tone, up on start and down on stop; played without blocking."""
        if not self.sound:
            return
        try:
            import numpy as np  # noqa: PLC0415
            import sounddevice as sd  # type: ignore[import-untyped]  # noqa: PLC0415

            rate = 22_050
            t = np.arange(int(0.12 * rate)) / rate
            freq = np.linspace(660, 990, t.size) if rising else np.linspace(990, 660, t.size)
            wave = 0.2 * np.sin(2 * np.pi * freq * t) * np.hanning(t.size)
            sd.play(wave.astype(np.float32), rate)
        except Exception as exc:  # no output device, no PortAudio
            self._once("sound", f"cannot play the notification sound: {exc}")

    def _run(self, key: str, args: list[str]) -> bool:
        try:
            done = subprocess.run(args, capture_output=True, timeout=TOOL_TIMEOUT_S, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            self._once(key, f"{args[0]} failed: {exc}")
            return False
        if done.returncode != 0:
            detail = done.stderr.decode(errors="replace").strip()[:200]
            self._once(key, f"{args[0]} failed ({done.returncode}): {detail}")
            return False
        return True
