"""The `cli:` and `hotkey_app:` sections of config.yaml.

The API token is a secret, so it comes from the environment only (`WHISP_CLI__TOKEN`, or
the shorter `WHISP_TOKEN`); the shared loader refuses it in the file.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import AliasChoices, Field, SecretStr

from whisp_shared.config import SectionSettings


class CliSettings(SectionSettings):
    """`whisp record` (and the gateway half of `whisp hotkey`)."""

    section: ClassVar[str] = "cli"

    gateway_url: str = "http://127.0.0.1:8000"
    """Where the gateway listens (`whisp up` serves it on port 8000)."""
    token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("WHISP_CLI__TOKEN", "WHISP_TOKEN")
    )
    """API token (`whisp users add`); not needed on loopback before the first user exists."""
    initial_release_ms: int = Field(default=700, ge=100, le=5000)
    """Hold-to-talk in a terminal: silence after the first SPACE that means "released".
    Terminals start auto-repeat after 250-660 ms, so this must outlast that delay."""
    repeat_release_ms: int = Field(default=120, ge=30, le=2000)
    """The floor of the release timeout once repeats flow (every 25-40 ms in a terminal);
    the timeout adapts upward to 3x the measured repeat interval for slow repeat rates."""
    device: str | None = None
    """Input device for `whisp record`: an index or a name from `whisp devices`."""
    agent: str | None = None
    """Agent to send each transcript to (an id from `whisp agents list`); unset: the
    default agent saved in your settings (`whisp me settings --default-agent`), if any."""
    session: str | None = None
    """Agent session name, so the agent remembers earlier turns."""
    preopen_device: bool = True
    """Keep the microphone open between recordings so a press captures at once and the
    level meter moves while idle; false opens it on each press instead."""
    max_duration_s: float = Field(default=300.0, gt=0)
    """A recording stops itself after this long (a key stuck down, a lost release)."""
    transcript_timeout_s: float = Field(default=120.0, gt=0)
    """How long to wait for the transcript after the upload before giving up on it."""
    agent_timeout_s: float = Field(default=300.0, gt=0)
    """How long to wait for the agent's answer after the transcript."""
    stream: bool = True
    """Stream the audio while the key is held (the gateway's Realtime WebSocket), so words
    show while you talk and the final text comes right after release; false uploads each
    clip after release instead (`--no-stream` for one run). A stream that cannot open or
    breaks falls back to the upload by itself."""
    realtime_url: str | None = None
    """The Realtime WebSocket (`ws://host:port/v1/realtime`) when it is not the gateway's
    own (default: `gateway_url` with ws:// and /v1/realtime); only the socket uses it."""


class HotkeySettings(SectionSettings):
    """`whisp hotkey`: the global-hotkey daemon."""

    section: ClassVar[str] = "hotkey_app"

    keys: str = "<ctrl>+<shift>+r"
    """The chord, in pynput's syntax (`<ctrl>+<alt>+h`, `<f9>`, ...)."""
    press_mode: Literal["hold", "toggle"] = "hold"
    """hold: talk while the chord is held; toggle: one press starts, the next stops."""
    release_grace_ms: int = Field(default=60, ge=0, le=1000)
    """X auto-repeat may send release+press pairs for a held key; a release is acted on
    only when no press follows within this grace."""
    clipboard: bool = True
    """Copy each transcript to the clipboard."""
    type_text: bool = False
    """Also type the transcript into the focused window (xdotool)."""
    notify: bool = True
    """Desktop notifications (notify-send) for start, transcript, answer and errors."""
    sound: bool = False
    """A short tone on start and stop."""
    tray: bool = True
    """A tray icon showing the state (needs the `tray` extra and a system tray)."""
