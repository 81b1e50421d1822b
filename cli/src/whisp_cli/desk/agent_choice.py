"""Which agent `whisp record` and `whisp hotkey` send transcripts to, decided once at start.

`--agent` wins, then `cli.agent` (config or `WHISP_CLI__AGENT`), then the `default_agent`
the person saved in their settings (the page and `whisp me settings --default-agent` set
it). An upload goes to an agent only when its request names one (the gateway applies the
default only to device recordings and Wyoming satellites, which have no one to ask), so the
CLI reads the preference and names it on every request.

Reading the settings is the only network call, made only when the first two are unset; if
it fails the CLI still records (no agent), with a one-line note saying why.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from whisp_cli.desk.gateway import GatewayError
from whisp_shared.user_settings import UserSettings

Source = Literal["--agent", "cli.agent", "your settings", "none"]


@dataclass(frozen=True)
class AgentChoice:
    agent: str | None
    source: Source
    note: str | None = None
    """For the person, when they might not expect the outcome (from the settings, or the
    settings could not be read)."""


def resolve_agent(
    explicit: str | None, configured: str | None, saved: Callable[[], UserSettings]
) -> AgentChoice:
    """The agent for this run; `saved` (the caller's settings from the gateway) is called
    only when neither `explicit` (`--agent`) nor `configured` (`cli.agent`) names one."""
    if explicit:
        return AgentChoice(explicit, "--agent")
    if configured:
        return AgentChoice(configured, "cli.agent")
    try:
        default = saved().default_agent
    except GatewayError as exc:
        return AgentChoice(
            None, "none", f"could not read your default agent, so no agent answers: {exc}"
        )
    if default is None:
        return AgentChoice(None, "none")
    return AgentChoice(
        default, "your settings", f"transcripts go to {default} (your default agent; "
        "--agent or cli.agent picks another)"
    )  # fmt: skip
