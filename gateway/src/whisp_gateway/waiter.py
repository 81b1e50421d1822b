"""Wait until a recording's transcript is settled (for `?wait=true` and the OpenAI endpoint).

The caller subscribes to the hub *before* submitting, so a snapshot that arrives while the
upload response is still travelling cannot be missed.
"""

from __future__ import annotations

import asyncio
import time

from whisp_gateway.errors import GatewayStopping, TranscriptionTimeout
from whisp_gateway.hub import Subscription
from whisp_shared.views import Transcript


async def wait_for_transcript(sub: Subscription, recording_id: str, timeout_s: float) -> Transcript:
    """The first snapshot of `recording_id` that is transcribed or failed (an agent's answer
    may still follow; it is not waited for)."""
    deadline = time.monotonic() + timeout_s
    while True:
        remaining = deadline - time.monotonic()
        try:
            item = await asyncio.wait_for(sub.queue.get(), timeout=max(remaining, 0.0))
        except TimeoutError:
            raise TranscriptionTimeout(
                f"no transcript within {timeout_s:.0f} s; it will still appear in your history "
                f"(GET /api/transcripts/{recording_id})"
            ) from None
        if item is None:
            raise GatewayStopping("the gateway is restarting; try again")
        transcript = item.event.transcript
        if transcript.recording_id == recording_id and transcript.status != "processing":
            return transcript
