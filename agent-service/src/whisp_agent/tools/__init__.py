"""The built-in tools, by name: what agents' `tools:` lists may name."""

from __future__ import annotations

from whisp_agent.tools import calculator, clock, notes, transcripts
from whisp_agent.tools.base import ToolDeps, ToolFailure, ToolRegistry, ToolSpec

__all__ = ["ToolDeps", "ToolFailure", "ToolRegistry", "ToolSpec", "builtin_tools"]


def builtin_tools() -> ToolRegistry:
    registry = ToolRegistry()
    for module in (clock, calculator, transcripts, notes):
        registry.register(module.TOOL)
    return registry
