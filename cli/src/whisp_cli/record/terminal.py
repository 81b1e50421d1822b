"""The terminal as a key source: unbuffered, unechoed input, restored on every exit path.

Raw enough to see each SPACE the moment it arrives (no line buffering, no echo) and to
read Ctrl+C as a key (ISIG off: the main loop decides how to leave, instead of a
KeyboardInterrupt landing in the middle of a device close), but output processing stays
on so Rich can still draw. The saved attributes are put back by the context manager,
and SIGTERM/SIGHUP are turned into an exception so that happens on those too.
"""

from __future__ import annotations

import os
import select
import signal
import termios
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from types import FrameType
from typing import TextIO


class Key(StrEnum):
    SPACE = "space"
    QUIT = "quit"  # ESC, BACKSPACE, Ctrl+C, Ctrl+D
    OTHER = "other"


@dataclass(frozen=True)
class KeyEvent:
    key: Key
    at: float
    """time.monotonic() when the bytes were read."""


QUIT_BYTES = {0x1B: "esc", 0x7F: "backspace", 0x08: "backspace", 0x03: "ctrl+c", 0x04: "ctrl+d"}


def decode(chunk: bytes, at: float) -> list[KeyEvent]:
    """Bytes read at once -> key events. An escape *sequence* (arrows, F-keys: ESC [ ...
    or ESC O ...) is another key, not ESC; a lone ESC byte is ESC."""
    events: list[KeyEvent] = []
    i = 0
    while i < len(chunk):
        byte = chunk[i]
        if byte == 0x1B and i + 1 < len(chunk) and chunk[i + 1] in b"[O":
            events.append(KeyEvent(Key.OTHER, at))
            i += 2
            while i < len(chunk) and not 0x40 <= chunk[i] <= 0x7E:  # CSI parameter bytes
                i += 1
            i += 1
            continue
        if byte == 0x20:
            events.append(KeyEvent(Key.SPACE, at))
        elif byte in QUIT_BYTES:
            events.append(KeyEvent(Key.QUIT, at))
        else:
            events.append(KeyEvent(Key.OTHER, at))
        i += 1
    return events


class TerminalClosed(Exception):
    """SIGTERM or SIGHUP arrived (the window closed, or someone asked us to stop)."""


def _raise_closed(signum: int, _frame: FrameType | None) -> None:
    raise TerminalClosed(signal.Signals(signum).name)


@contextmanager
def raw_keys(stream: TextIO) -> Iterator[KeyReader]:
    """Put `stream`'s terminal into key-at-a-time mode for the duration of the block."""
    fd = stream.fileno()
    saved = termios.tcgetattr(fd)
    old_handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGHUP)}
    mode = termios.tcgetattr(fd)
    mode[0] &= ~(termios.IXON | termios.ICRNL)  # Ctrl+S/Ctrl+Q are keys, not flow control
    mode[3] &= ~(termios.ECHO | termios.ICANON | termios.ISIG | termios.IEXTEN)
    mode[6][termios.VMIN] = 1
    mode[6][termios.VTIME] = 0
    try:
        for sig in old_handlers:
            signal.signal(sig, _raise_closed)
        termios.tcsetattr(fd, termios.TCSADRAIN, mode)
        yield KeyReader(fd)
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        for sig, handler in old_handlers.items():
            signal.signal(sig, handler)


class KeyReader:
    def __init__(self, fd: int) -> None:
        self.fd = fd

    def read(self, timeout_s: float) -> list[KeyEvent]:
        """Keys that arrive within `timeout_s` (an empty list when none did)."""
        ready, _, _ = select.select([self.fd], [], [], max(0.0, timeout_s))
        if not ready:
            return []
        at = time.monotonic()
        chunk = os.read(self.fd, 1024)
        if not chunk:  # the terminal went away
            return [KeyEvent(Key.QUIT, at)]
        return decode(chunk, at)
