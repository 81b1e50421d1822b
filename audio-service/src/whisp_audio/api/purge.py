"""`DELETE /recordings?before=…`: remove one user's audio, for the gateway's per-user
retention and for a user's "delete everything of mine" (`whisp_shared.user_data`).

The user is the caller's (`X-Whisp-User` behind the service token; the local user without
it): nothing of another user is ever touched, and no caller may name someone else.
Without `before` it is everything of theirs, their live recordings on Redis included.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import AwareDatetime

from whisp_audio import metrics
from whisp_audio.api.deps import CallerDep, LiveDep, StoreDep
from whisp_shared.http_errors import ERROR_RESPONSES, ErrorBody
from whisp_shared.logs import get_logger
from whisp_shared.user_data import AUDIO_PURGE_PATH, AudioPurged

log = get_logger(__name__)

REFUSALS: dict[int | str, dict[str, Any]] = {
    422: {
        "model": ErrorBody,
        "description": "`invalid_request`: `before` is not an ISO 8601 time with a time zone",
    }
}

router = APIRouter(tags=["recordings"], responses=ERROR_RESPONSES)


@router.delete(AUDIO_PURGE_PATH, responses=REFUSALS)
async def purge_recordings(
    caller: CallerDep,
    store: StoreDep,
    live: LiveDep,
    before: Annotated[
        AwareDatetime | None,
        Query(description="Only recordings made before this time (ISO 8601, with a zone)."),
    ] = None,
) -> AudioPurged:
    """Delete the caller's recordings made before `before` (all of them without it): the
    audio, its metadata and, for all of them, their live recordings in progress."""
    deleted, freed = await asyncio.to_thread(store.purge, caller.user_id, before)
    if before is None:
        live_dropped = await live.sessions.forget_user(caller.user_id)
        if live_dropped:
            log.info("purged a user's live recordings", user_id=caller.user_id,
                     live=live_dropped)  # fmt: skip
    metrics.PURGED.inc(deleted)
    return AudioPurged(deleted=deleted, freed_bytes=freed)
