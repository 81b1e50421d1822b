"""A bus run's answer pushed to its user's open pages while the model writes it.

The consumer feeds every `RunEvent` of the run here; text deltas leave as `AnswerDelta`s on
`whisp:live` (`EventBus.publish_live`: never stored, never replayed). The `AgentResponded`
that ends the run is the truth: the stored answer replaces whatever the pieces built.

Coalescing: a model streams about one token per chunk: ~25 a second from the bundled 1.5B
model, 100 and more from hosted ones, often in bursts of several per millisecond. One XADD
per token would make Redis and every gateway replica's tail carry each of them for each
run. Pieces are gathered instead and sent at most every `FLUSH_INTERVAL_S`: 80 ms is under
the ~100 ms at which text reads as jumping rather than flowing, and sends about half as
many pieces as the local model makes tokens, an eighth or less of a hosted model's. The
first piece goes out at once: the time to the first word is what a person waits for. There
is no waiting for a word boundary: a word that is cut shows whole 80 ms later, while a wait
for a space would hold a long word (or a language without spaces) back for longer.

Best-effort: a publish that fails is logged once per run and the run goes on; a piece that
is lost leaves a gap until the stored answer fills it.

The rules a page follows to build the text (run, sequence, part) are `AnswerDelta`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from dataclasses import dataclass

from whisp_agent.runs import RunEvent
from whisp_shared.bus import EventBus
from whisp_shared.events import EventBase
from whisp_shared.logs import get_logger
from whisp_shared.views import AnswerDelta

log = get_logger(__name__)

FLUSH_INTERVAL_S = 0.08
BOUNDARIES = frozenset({"tool", "agent", "stage"})
"""Run events after which the text written so far was not the answer (a tool call, a
handoff, a pipeline's next stage): the next text is a new part."""


@dataclass
class _Piece:
    part: int
    agent_id: str
    text: str = ""


class AnswerStream:
    """One attempt of one run: `feed` each event as it comes, `close` once the run ended."""

    def __init__(
        self, bus: EventBus, source: EventBase, interval_s: float = FLUSH_INTERVAL_S
    ) -> None:
        self.bus = bus
        self.source = source
        self.interval_s = interval_s
        self.run_id = uuid.uuid4().hex
        self.sent = 0
        """Pieces published."""
        self.first_sent_at: float | None = None
        """time.perf_counter() when the first piece was published."""
        self._sealed: list[_Piece] = []
        self._open: _Piece | None = None
        self._part = 0
        self._part_has_text = False
        self._sequence = 0
        self._last_flush = -float("inf")
        self._flusher: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._closing = False
        self._failed = False

    def feed(self, event: RunEvent) -> None:
        """Take one run event (never blocks: publishing happens on a task of its own)."""
        if event.type in BOUNDARIES:
            self._boundary()
            return
        if event.type != "delta" or not event.text or event.agent_id is None:
            return
        if self._open is not None and self._open.agent_id != event.agent_id:
            self._boundary()
        if self._open is None:
            self._open = _Piece(self._part, event.agent_id)
        self._open.text += event.text
        self._part_has_text = True
        if self._flusher is None or self._flusher.done():
            delay = self._last_flush + self.interval_s - time.monotonic()
            self._flusher = asyncio.create_task(self._flush_loop(delay))

    async def close(self) -> None:
        """Send what is still gathered, and wait until it is out (or failed)."""
        self._closing = True
        self._wake.set()
        if self._flusher is not None:
            await self._flusher
        for piece in self._take():
            await self._publish(piece)

    # --- inside --------------------------------------------------------------------------

    def _boundary(self) -> None:
        if not self._part_has_text:
            return
        if self._open is not None:
            self._sealed.append(self._open)
            self._open = None
        self._part += 1
        self._part_has_text = False

    def _take(self) -> list[_Piece]:
        pieces, self._sealed = self._sealed, []
        if self._open is not None:
            pieces.append(self._open)
            self._open = None
        return pieces

    async def _flush_loop(self, delay: float) -> None:
        """Publish what is gathered, at most once per interval, until nothing is left."""
        while True:
            if delay > 0 and not self._closing:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
            pieces = self._take()
            if not pieces:
                return
            self._last_flush = time.monotonic()
            for piece in pieces:
                await self._publish(piece)
            if self._open is None and not self._sealed:
                return
            delay = self._last_flush + self.interval_s - time.monotonic()

    async def _publish(self, piece: _Piece) -> None:
        delta = AnswerDelta(
            **self.source.follow_up(),
            agent_id=piece.agent_id,
            delta=piece.text,
            run_id=self.run_id,
            sequence=self._sequence,
            part=piece.part,
        )
        self._sequence += 1
        try:
            await self.bus.publish_live(delta)
        except Exception as exc:  # a lost piece costs nothing: the stored answer follows
            if not self._failed:
                log.warning("publishing an answer delta failed", error=str(exc),
                            recording_id=delta.recording_id)  # fmt: skip
            self._failed = True
            return
        self.sent += 1
        if self.first_sent_at is None:
            self.first_sent_at = time.perf_counter()
