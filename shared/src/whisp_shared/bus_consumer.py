"""What a consumer group does with one entry: decide, run the handler, say how to finish.

`deliver` turns one entry this process holds (`Taken`) into one `Finish`: publish the
handler's output, dead-letter (and tell the user), ack untouched, or leave pending for a
retry with the error kept. It talks to no server: the group loop (`bus_group`) reads the
entries and what `deliver` needs to know about them (delivery count, done-marker, last
error) a batch at a time, and the finisher (`bus_finish`) writes many finishes in one step.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

from pydantic import ValidationError

from whisp_shared.codec import DATA_FIELD, TYPE_FIELD, decode_entry
from whisp_shared.config import BusSettings
from whisp_shared.errors import WhispError
from whisp_shared.events import Event, EventBase, FailureFields
from whisp_shared.logs import event_context, get_logger

log = get_logger(__name__)

Handler = Callable[[Event], Awaitable[EventBase | None]]
"""Turns one input event into one output event (or None when there is nothing to say)."""
FailureFactory = Callable[[Event, FailureFields], EventBase]
"""Builds the event that tells the user their work failed for good."""


def _accept_all(_event: Event) -> bool:
    return True


@dataclass(frozen=True)
class Consumer:
    """One consumer group's job: what it reads, what it writes, how it fails."""

    stream: str
    group: str
    output_stream: str
    handler: Handler
    on_failure: FailureFactory
    accepts: Callable[[Event], bool] = field(default=_accept_all)
    """Entries this returns False for are acked without running the handler."""
    max_workers: int = 1
    """Entries handled at once by this process."""
    read_count: int | None = None
    """Most entries this process has in hand (running or waiting for a worker); None: the
    bus's `read_count`. Work that takes seconds should set it to `max_workers`: what is not
    in hand stays in the stream, where an idle peer (or a lag-based autoscaler) sees it."""

    def __post_init__(self) -> None:
        if self.max_workers < 1 or (self.read_count is not None and self.read_count < 1):
            msg = f"{self.group}: max_workers and read_count must be at least 1"
            raise ValueError(msg)

    def done_key(self, recording_id: str) -> str:
        """One result per recording, per group, per stream (a group may read several)."""
        return f"whisp:done:{self.stream}:{self.group}:{recording_id}"

    @property
    def errors_key(self) -> str:
        """Hash of entry id → the last retryable error, read when the entry is given up."""
        return f"whisp:errors:{self.stream}:{self.group}"


@dataclass(slots=True, eq=False)
class Taken:
    """One entry this process holds, from its read to its ack (or release)."""

    entry_id: str
    fields: dict[bytes, bytes]
    deliveries: int
    """This delivery's number: 1 for a new entry, the PEL's count for a reclaimed one."""
    event: Event | None = None
    decode_error: str = ""
    done_already: bool = False
    """The recording's done-marker was set when the entry was read: skip the handler."""
    last_error: str | None = None
    """What the previous delivery failed with (reclaimed entries only)."""
    started: bool = False
    taken_at: float = field(default_factory=time.perf_counter)

    def decode(self) -> None:
        try:
            self.event = decode_entry(self.fields)
        except (ValidationError, ValueError) as exc:
            self.decode_error = str(exc)

    @property
    def payload(self) -> tuple[bytes, bytes]:
        """The entry's type and body as written (all its fields, when it has no body)."""
        fields = self.fields
        return fields.get(TYPE_FIELD, b""), fields.get(DATA_FIELD) or repr(fields).encode()


Kind = Literal["done", "ack", "retry"]


@dataclass(slots=True)
class Finish:
    """How one delivery ends (see finish.lua): `done` sets the done-marker and, if it was
    the first to, writes the output and dead letter, then acks; `ack` only acks; `retry`
    keeps the error and leaves the entry pending for a later delivery."""

    taken: Taken
    kind: Kind
    done_key: str
    outcome: str
    """The metrics label when this finish wins; a `done` that loses its race is `duplicate`."""
    output: EventBase | None = None
    dead_letter: tuple[bytes, bytes] | None = None
    error: str = ""


async def deliver(consumer: Consumer, settings: BusSettings, taken: Taken) -> Finish:
    """Decide what to do with one entry, running the handler when there is work to do."""
    event = taken.event
    if event is None:
        log.error(
            "undecodable entry dead-lettered", entry_id=taken.entry_id, error=taken.decode_error
        )
        return Finish(
            taken,
            "done",
            consumer.done_key(f"entry:{taken.entry_id}"),
            "undecodable",
            dead_letter=taken.payload,
            error=taken.decode_error,
        )
    with event_context(event):
        return await _deliver_event(consumer, settings, taken, event)


async def _deliver_event(
    consumer: Consumer, settings: BusSettings, taken: Taken, event: Event
) -> Finish:
    done_key = consumer.done_key(event.recording_id)
    if not consumer.accepts(event):
        return Finish(taken, "ack", done_key, "ignored")
    if taken.done_already:
        log.info("duplicate delivery skipped", entry_id=taken.entry_id)
        return Finish(taken, "ack", done_key, "duplicate")
    deliveries = taken.deliveries
    if deliveries > settings.max_deliveries:
        reason = (
            taken.last_error
            or f"the worker handling it stopped {deliveries - 1} times before finishing"
        )
        return _give_up(consumer, taken, event, FailureFields(code="gave_up", message=reason))
    try:
        output = await consumer.handler(event)
    except WhispError as exc:
        failure = exc.as_failure()
    except Exception as exc:
        log.exception("handler failed", entry_id=taken.entry_id, deliveries=deliveries)
        failure = FailureFields(
            code="internal_error", message=f"{type(exc).__name__}: {exc}", retryable=True
        )
    else:
        outcome = "published" if output is not None else "done"
        return Finish(taken, "done", done_key, outcome, output=output)
    if failure.retryable and deliveries < settings.max_deliveries:
        log.warning(
            "handler failed; entry left pending for retry",
            code=failure.code,
            error=failure.message,
            deliveries=deliveries,
        )
        return Finish(taken, "retry", done_key, "retry", error=failure.message)
    return _give_up(consumer, taken, event, failure)


def _give_up(consumer: Consumer, taken: Taken, event: Event, failure: FailureFields) -> Finish:
    log.error(
        "entry dead-lettered; user told",
        code=failure.code,
        error=failure.message,
        deliveries=taken.deliveries,
    )
    return Finish(
        taken,
        "done",
        consumer.done_key(event.recording_id),
        "dead_lettered",
        output=consumer.on_failure(event, failure),
        dead_letter=taken.payload,
        error=f"{failure.code}: {failure.message}",
    )
