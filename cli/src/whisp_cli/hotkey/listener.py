"""pynput as a source of chord edges, and where it cannot work (Wayland, no display).

pynput's X backend sees every key through the RECORD extension, press and release, in
any application. It needs an X server: under Wayland only XWayland windows are visible
to it, and with no `DISPLAY` at all it cannot start; a Wayland compositor offers no
global key-up to ordinary clients (only a portal could, and few implement it). There the
daemon runs without a listener, in toggle mode, triggered by a compositor shortcut that
runs `whisp hotkey --toggle-running`.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from whisp_cli.desk.ptt import Edge
from whisp_cli.hotkey.chord import ChordTracker

Display = Literal["x11", "xwayland", "wayland", "none"]


def display_kind(env: Mapping[str, str] | None = None) -> Display:
    env = os.environ if env is None else env
    x11, wayland = bool(env.get("DISPLAY")), bool(env.get("WAYLAND_DISPLAY"))
    if x11 and wayland:
        return "xwayland"
    if x11:
        return "x11"
    return "wayland" if wayland else "none"


WAYLAND_NOTE = (
    "Wayland without an X display: global key-up cannot be observed without a portal, so "
    "hold-to-talk is unavailable. Running in toggle mode: bind a shortcut in your "
    "desktop's keyboard settings to `whisp hotkey --toggle-running` (one press starts, "
    "the next stops)."
)
XWAYLAND_NOTE = (
    "Wayland session: the hotkey is seen only while an X11 (XWayland) window has focus. "
    "For a shortcut that works everywhere, bind `whisp hotkey --toggle-running` in your "
    "desktop's keyboard settings."
)


class HotkeyError(RuntimeError):
    """The chord cannot be parsed, or no key listener can start here."""


@dataclass(frozen=True)
class KeyEdge:
    edge: Edge
    at: float


def parse_chord(keys: str) -> list[Hashable]:
    """`<ctrl>+<shift>+r` -> pynput keys (raises HotkeyError with the reason)."""
    keyboard = _pynput_keyboard()
    try:
        parsed: list[Hashable] = list(keyboard.HotKey.parse(keys))
    except ValueError as exc:
        raise HotkeyError(
            f"cannot read the hotkey {keys!r}: {exc} (write it like <ctrl>+<shift>+r)"
        ) from exc
    return parsed


def _pynput_keyboard() -> Any:
    """pynput picks its backend at import and fails without a display; say so plainly."""
    try:
        from pynput import keyboard  # type: ignore[import-untyped]  # noqa: PLC0415
    except ImportError as exc:
        raise HotkeyError(f"no keyboard listener here: {exc}".splitlines()[0]) from exc
    return keyboard


class ChordListener:
    """A pynput Listener that hands chord edges to `post` (e.g. a queue's put: its
    callbacks must return at once; the daemon's loop does the work)."""

    def __init__(self, keys: str, grace_s: float, post: Callable[[KeyEdge], None]) -> None:
        keyboard = _pynput_keyboard()
        self._post_edge = post
        self._lock = threading.Lock()  # the tracker is fed by pynput's thread and polled by ours
        self._listener: Any = keyboard.Listener(on_press=self._press, on_release=self._release)
        canonical = self._listener.canonical
        self.tracker = ChordTracker.of((canonical(k) for k in parse_chord(keys)), grace_s)

    def start(self) -> None:
        self._listener.start()
        self._listener.wait()  # the X connection is up: presses from now on are seen

    def stop(self) -> None:
        self._listener.stop()

    def poll(self) -> None:
        """Let a pending release (past its grace) through; called from the daemon loop."""
        with self._lock:
            self._post(self.tracker.poll(time.monotonic()))

    @property
    def deadline(self) -> float | None:
        return self.tracker.deadline

    def _press(self, key: Any) -> None:
        if key is not None:
            with self._lock:
                self._post(self.tracker.press(self._listener.canonical(key), time.monotonic()))

    def _release(self, key: Any) -> None:
        if key is not None:
            with self._lock:
                self._post(self.tracker.release(self._listener.canonical(key), time.monotonic()))

    def _post(self, edge: Edge | None) -> None:
        if edge is not None:
            self._post_edge(KeyEdge(edge, time.monotonic()))
