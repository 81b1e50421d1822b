"""An optional tray icon whose colour is the daemon's state (grey idle, red recording,
amber processing), with a Quit item.

pystray and Pillow come with the `tray` extra; without them, or without a system tray
to dock into, the daemon carries on without an icon.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, Literal

State = Literal["idle", "recording", "processing"]
COLOURS: dict[State, str] = {"idle": "#8a8a8a", "recording": "#d62828", "processing": "#f4a259"}


class Tray:
    def __init__(self, icon: Any, images: dict[State, Any]) -> None:
        self._icon = icon
        self._images = images

    @classmethod
    def start(cls, on_quit: Callable[[], None]) -> Tray:
        """Show the icon (raises RuntimeError with the reason when it cannot)."""
        try:
            import pystray  # type: ignore[import-untyped]  # noqa: PLC0415
            from PIL import Image, ImageDraw  # noqa: PLC0415
        except Exception as exc:  # ImportError, or pystray's backend failing to load
            raise RuntimeError(f"no tray icon ({exc}); install whisp-cli[tray]") from exc

        if getattr(pystray.Icon, "__module__", "").endswith("_xorg") and not _x_tray_present():
            # pystray would otherwise log a traceback per update and keep a thread alive.
            raise RuntimeError("no system tray on this display")

        def image(colour: str) -> Any:
            picture = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
            ImageDraw.Draw(picture).ellipse((8, 8, 56, 56), fill=colour)
            return picture

        images: dict[State, Any] = {state: image(c) for state, c in COLOURS.items()}
        menu = pystray.Menu(pystray.MenuItem("Quit WhisPTT hotkey", on_quit))
        icon = pystray.Icon("whisptt", images["idle"], "WhisPTT: idle", menu)
        try:
            icon.run_detached()
        except Exception as exc:
            raise RuntimeError(f"no tray icon: {exc}") from exc
        return cls(icon, images)

    def show(self, state: State) -> None:
        with contextlib.suppress(Exception):  # the tray went away: the daemon carries on
            self._icon.icon = self._images[state]
            self._icon.title = f"WhisPTT: {state}"

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._icon.stop()


def _x_tray_present() -> bool:
    """Does a tray manager own the `_NET_SYSTEM_TRAY_S<screen>` selection (the XEmbed
    system-tray protocol pystray's X backend docks into)?"""
    try:
        from Xlib import X, display  # type: ignore[import-untyped]  # noqa: PLC0415

        connection = display.Display()
    except Exception:
        return False
    try:
        atom = connection.intern_atom(f"_NET_SYSTEM_TRAY_S{connection.get_default_screen()}")
        return bool(connection.get_selection_owner(atom) != X.NONE)
    finally:
        connection.close()
