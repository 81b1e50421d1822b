"""The bus side: a `TranscriptReady` that asks for an agent or a pipeline becomes one run,
and its answer one `AgentResponded` (or, through the bus's failure path, an `AgentFailed`).

Idempotency and acks are the bus's (`whisp_shared.bus`): the handler only returns the output
event or raises an `AgentError` (a shared `WhispError`), whose `retryable` flag decides
between "leave pending for a later delivery" (rate limits, upstream down) and "tell the user
now" (unknown agent, bad key).
The recording id is the run's idempotency key, so a redelivered run does not write its notes
twice.

The run streams: its words go to the user's open pages as the model writes them
(`answer_stream`, live only), while the returned `AgentResponded` stays the stored truth.
"""

from __future__ import annotations

import time

from whisp_agent.answer_stream import AnswerStream
from whisp_agent.runs import RunOutcome, RunRequest
from whisp_agent.runtime import AgentRuntime
from whisp_shared.bus import Consumer, EventBus, Handler
from whisp_shared.errors import PermanentError
from whisp_shared.events import AgentFailed, AgentResponded, Event, FailureFields, TranscriptReady
from whisp_shared.logs import get_logger
from whisp_shared.streams import AGENTS_GROUP, RESPONSES, TRANSCRIPTS

log = get_logger(__name__)


def wants_agent(event: Event) -> bool:
    return isinstance(event, TranscriptReady) and event.wants_agent and not event.is_empty


def failure_event(event: Event, failure: FailureFields) -> AgentFailed:
    agent_id = event.agent_id if isinstance(event, TranscriptReady) else None
    pipeline = event.pipeline if isinstance(event, TranscriptReady) else None
    return AgentFailed(
        **event.follow_up(), **failure.model_dump(), agent_id=agent_id, pipeline=pipeline
    )


async def streamed_run(
    runtime: AgentRuntime, bus: EventBus, event: TranscriptReady, request: RunRequest
) -> RunOutcome:
    """The run's outcome; its text deltas published as `AnswerDelta`s on the way."""
    started = time.perf_counter()
    answer = AnswerStream(bus, event)
    outcome: RunOutcome | None = None
    try:
        async for run_event in runtime.stream(request):
            answer.feed(run_event)
            if run_event.outcome is not None:
                outcome = run_event.outcome
    finally:
        await answer.close()
    assert outcome is not None, "a run always ends with its outcome"
    first = answer.first_sent_at
    log.info("answer streamed", pieces=answer.sent, run_id=answer.run_id,
             first_piece_s=None if first is None else round(first - started, 3))  # fmt: skip
    return outcome


def make_handler(runtime: AgentRuntime, bus: EventBus) -> Handler:
    async def handle(event: Event) -> AgentResponded:
        if not isinstance(event, TranscriptReady):
            raise PermanentError(f"cannot run an agent on {event.type}")
        target = event.pipeline or event.agent_id
        assert target is not None  # wants_agent() filtered the rest
        if event.pipeline and event.agent_id:
            log.warning("both pipeline and agent_id set; running the pipeline",
                        pipeline=event.pipeline, agent_id=event.agent_id)  # fmt: skip
        request = RunRequest(
            target=target,
            text=event.text,
            user_id=event.user_id,
            session_id=event.session_id,
            run_key=event.recording_id,
        )
        outcome = await streamed_run(runtime, bus, event, request)
        return AgentResponded(
            **event.follow_up(),
            agent_id=outcome.agent_id,
            output=outcome.output,
            pipeline=target if outcome.kind == "pipeline" else None,
            session_id=event.session_id,
            usage=outcome.usage,
        )

    return handle


def agent_consumer(runtime: AgentRuntime, bus: EventBus, max_workers: int) -> Consumer:
    return Consumer(
        stream=TRANSCRIPTS,
        group=AGENTS_GROUP,
        output_stream=RESPONSES,
        handler=make_handler(runtime, bus),
        on_failure=failure_event,
        accepts=wants_agent,
        max_workers=max_workers,
        read_count=max_workers,  # an agent run is slow: leave the rest for idle peers
    )
