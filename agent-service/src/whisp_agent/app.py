"""`create_app()` for the agent service: consumes transcripts that ask for an agent."""

from fastapi import FastAPI

from whisp_agent.settings import AgentSettings
from whisp_shared.bus import Consumer, EventBus
from whisp_shared.config import BusSettings
from whisp_shared.errors import PermanentError
from whisp_shared.events import AgentFailed, Event, EventBase, FailureFields, TranscriptReady
from whisp_shared.service import create_service_app
from whisp_shared.streams import AGENTS_GROUP, RESPONSES, TRANSCRIPTS


def wants_agent(event: Event) -> bool:
    return isinstance(event, TranscriptReady) and event.wants_agent and not event.is_empty


def failure_event(event: Event, failure: FailureFields) -> AgentFailed:
    agent_id = event.agent_id if isinstance(event, TranscriptReady) else None
    pipeline = event.pipeline if isinstance(event, TranscriptReady) else None
    return AgentFailed(
        **event.follow_up(), **failure.model_dump(), agent_id=agent_id, pipeline=pipeline
    )


async def run_agent(event: Event) -> EventBase | None:
    assert isinstance(event, TranscriptReady)
    name = event.agent_id or event.pipeline
    raise PermanentError(
        f"unknown agent or pipeline '{name}': the agent registry is empty", code="unknown_agent"
    )


def create_app(settings: AgentSettings | None = None, bus: EventBus | None = None) -> FastAPI:
    settings = settings or AgentSettings()
    bus = bus or EventBus(BusSettings())
    bus.consume(
        Consumer(
            stream=TRANSCRIPTS,
            group=AGENTS_GROUP,
            output_stream=RESPONSES,
            handler=run_agent,
            on_failure=failure_event,
            accepts=wants_agent,
        )
    )
    app = create_service_app("WhisPTT agent service", bus)
    app.state.settings = settings
    return app
