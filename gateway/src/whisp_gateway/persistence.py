"""Store every result once, then forward it to the users' live stream.

One consumer group (`gateway`) per source stream, shared by all gateway replicas, so
each event is stored exactly once however many replicas run. The handler's output is
the event itself, published to `whisp:user-events` in the bus's atomic finish: a user
sees an event live only once it is in their history, and sees it exactly once. If
storing keeps failing, the event is still forwarded (dead-lettered for ops), so the
user is never left waiting on a database problem.
"""

from __future__ import annotations

from whisp_gateway.repository import Repository
from whisp_shared.bus import Consumer
from whisp_shared.events import Event, EventBase, FailureFields
from whisp_shared.streams import GATEWAY_GROUP, RECORDINGS, RESPONSES, TRANSCRIPTS, USER_EVENTS


def persistence_consumers(repo: Repository) -> list[Consumer]:
    async def store(event: Event) -> EventBase:
        await repo.apply(event)
        return event

    def deliver_anyway(event: Event, _failure: FailureFields) -> EventBase:
        return event

    return [
        Consumer(stream, GATEWAY_GROUP, USER_EVENTS, store, deliver_anyway)
        for stream in (RECORDINGS, TRANSCRIPTS, RESPONSES)
    ]
