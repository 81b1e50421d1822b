"""Tools as plain typed Python, independent of the agents that use them and of the SDK.

A tool is a name, a description for the model, a pydantic model of its arguments and an
async function. The caller's identity travels in `ToolDeps`, set by the service from the
authenticated request or the bus event, never from the model's arguments: that is what keeps
a tool from ever seeing another user's data.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel


class NoteSink(Protocol):
    async def add(self, user_id: str, kind: str, text: str, run_key: str | None) -> int: ...


class TranscriptSearch(Protocol):
    async def search(self, user_id: str, query: str, limit: int) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class ToolDeps:
    """Everything a tool may touch for one run, scoped to one user."""

    user_id: str
    session_id: str | None = None
    run_key: str | None = None
    """Idempotency key of the run (the recording id on the bus): a redelivered run does not
    write the same note twice."""
    notes: NoteSink | None = None
    transcripts: TranscriptSearch | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class ToolFailure(Exception):
    """A tool could not do its job; the message goes back to the model, which can recover."""


ToolFn = Callable[[ToolDeps, Any], Awaitable[str]]


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    args: type[BaseModel]
    run: ToolFn


class ToolRegistry:
    """Name → tool; registering a name twice is a programming error, not a silent override."""

    def __init__(self) -> None:
        self._tools: dict[str, ToolSpec] = {}

    def register(self, tool: ToolSpec) -> ToolSpec:
        if tool.name in self._tools:
            raise ValueError(f"tool '{tool.name}' is registered twice")
        self._tools[tool.name] = tool
        return tool

    def get(self, name: str) -> ToolSpec:
        return self._tools[name]

    def names(self) -> list[str]:
        return sorted(self._tools)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self) -> Iterator[ToolSpec]:
        return iter(self._tools.values())
