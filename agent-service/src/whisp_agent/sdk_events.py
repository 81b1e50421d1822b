"""The Agents SDK's stream events as the service's `RunEvent`s.

The SDK streams raw model events, agent switches and run items of many kinds; callers of
this service see text deltas, which agent is speaking, and tool calls, nothing SDK-shaped.
Who is speaking is tracked here because a raw text delta does not say which agent made it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from agents import (
    AgentUpdatedStreamEvent,
    RawResponsesStreamEvent,
    RunItemStreamEvent,
    RunResultStreaming,
    StreamEvent,
)
from openai.types.responses import ResponseTextDeltaEvent

from whisp_agent.runs import RunEvent


async def run_events(
    streaming: RunResultStreaming, first_agent: str, stage: int | None
) -> AsyncIterator[RunEvent]:
    """The run's events, each attributed to the agent speaking at that point (`first_agent`
    until a handoff) and tagged with the pipeline `stage` (None outside pipelines)."""
    current = first_agent
    async for event in streaming.stream_events():
        converted = to_run_event(event, current, stage)
        if converted is None:
            continue
        if converted.type == "agent" and converted.agent_id:
            current = converted.agent_id
        yield converted


def to_run_event(event: StreamEvent, current: str, stage: int | None) -> RunEvent | None:
    """The event callers see, or None for the SDK's own bookkeeping."""
    if isinstance(event, RawResponsesStreamEvent):
        if isinstance(event.data, ResponseTextDeltaEvent):
            return RunEvent(type="delta", agent_id=current, text=event.data.delta, stage=stage)
        return None
    if isinstance(event, AgentUpdatedStreamEvent):
        return RunEvent(type="agent", agent_id=event.new_agent.name, stage=stage)
    if isinstance(event, RunItemStreamEvent) and event.name == "tool_called":
        raw = getattr(event.item, "raw_item", None)
        name = getattr(raw, "name", None) or (raw.get("name") if isinstance(raw, dict) else None)
        return RunEvent(type="tool", agent_id=current, text=str(name or "tool"), stage=stage)
    return None
