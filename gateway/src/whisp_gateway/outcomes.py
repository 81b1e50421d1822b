"""Wait for what became of a recording (for `?wait=true` and the OpenAI endpoint).

The caller subscribes to the hub *before* submitting, so an outcome that arrives
while the upload response is still travelling cannot be missed.
"""

from __future__ import annotations

import asyncio
import time

from whisp_gateway.hub import Subscription
from whisp_shared.events import TranscriptionFailed, TranscriptReady
from whisp_shared.http_errors import http_error

Outcome = TranscriptReady | TranscriptionFailed


async def wait_for_transcript(sub: Subscription, recording_id: str, timeout_s: float) -> Outcome:
    deadline = time.monotonic() + timeout_s
    while True:
        remaining = deadline - time.monotonic()
        try:
            item = await asyncio.wait_for(sub.queue.get(), timeout=max(remaining, 0.0))
        except TimeoutError:
            raise http_error(
                504,
                "transcription_timeout",
                f"no transcript within {timeout_s:.0f} s; it will still appear in your history "
                f"(GET /api/transcripts/{recording_id})",
            ) from None
        if item is None:
            raise http_error(503, "gateway_stopping", "the gateway is restarting; try again")
        event = item.event
        if event.recording_id == recording_id and isinstance(event, Outcome):
            return event
