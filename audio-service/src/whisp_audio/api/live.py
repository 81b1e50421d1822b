"""Live recordings over HTTP, for the gateway's streaming surfaces (the Realtime WebSocket):
`POST /live`, then `POST /live/{id}/audio` per chunk, then `/commit` or `/cancel`.

Same callers and isolation as `POST /recordings`: the service token, and the user named in
`X-Whisp-User`; another user's recording id gets the 404 an unknown one gets. The logic is
`whisp_audio.live`; this module reads bodies (raw PCM16, size-limited while it streams in)
and counts refusals by code.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Request, Response

from whisp_audio import metrics
from whisp_audio.api.deps import CallerDep, LiveDep, SettingsDep
from whisp_audio.api.models import LiveCommit, LiveRecording, LiveStart
from whisp_audio.errors import ChunkTooLarge, UnsupportedMediaType
from whisp_shared.errors import WhispError
from whisp_shared.http_errors import ERROR_RESPONSES, ErrorBody

PCM_TYPES = frozenset({"application/octet-stream", "audio/pcm"})


def _documented(statuses: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    return {s: {"model": ErrorBody, "description": text} for s, text in statuses.items()}


NOT_FOUND = "`not_found`: unknown, expired, malformed or another user's recording (same answer)"
ENDED = "`recording_ended` (committed or cancelled already)"

router = APIRouter(prefix="/live", tags=["live"], responses=ERROR_RESPONSES)


@asynccontextmanager
async def _counted() -> AsyncIterator[None]:
    try:
        yield
    except WhispError as exc:
        metrics.LIVE_REFUSED.labels(exc.code).inc()
        raise


@router.post(
    "",
    status_code=201,
    responses=_documented(
        {
            422: "`invalid_request`: a bad or unknown field (sample_rate 8000-48000)",
            503: "`unavailable`: the message bus is unreachable; nothing was started",
        }
    ),
)
async def start_live(caller: CallerDep, live: LiveDep, body: LiveStart) -> LiveRecording:
    """Open a live recording for the caller's user and announce it to the transcription
    workers (`LiveRecordingStarted`). Its audio follows as PCM16 at `sample_rate`."""
    async with _counted():
        started = await live.start(caller.user_id, body, body.sample_rate, body.max_duration_s)
    return LiveRecording.of(started)


@router.post(
    "/{recording_id}/audio",
    status_code=204,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    },
    responses=_documented(
        {
            404: NOT_FOUND,
            409: f"{ENDED}; `max_duration_reached`: this chunk took the recording past its "
            "maximum length, so it was committed there (its audio up to the limit is kept); "
            "`conflict` (retryable): chunks of one recording were sent in parallel",
            413: "`chunk_too_large`: more bytes than `live_max_chunk_bytes`; split it",
            415: "`unsupported_media_type`: send `Content-Type: application/octet-stream`",
            422: "`bad_audio_chunk`: an odd number of bytes (not whole PCM16 samples)",
        }
    ),
)
async def append_audio(
    recording_id: str, request: Request, caller: CallerDep, live: LiveDep, settings: SettingsDep
) -> Response:
    """The next chunk: raw PCM16 little-endian mono at the recording's `sample_rate`."""
    async with _counted():
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media not in PCM_TYPES:
            raise UnsupportedMediaType(
                "live audio is raw PCM16: send it as application/octet-stream"
            )
        pcm = await _read_limited(request, settings.live_max_chunk_bytes)
        await live.append(caller, recording_id, pcm)
    return Response(status_code=204)


@router.post(
    "/{recording_id}/commit",
    responses=_documented({404: NOT_FOUND, 409: "`recording_ended`: it was cancelled"}),
)
async def commit_live(recording_id: str, caller: CallerDep, live: LiveDep) -> LiveCommit:
    """End the recording and store it (history, download, retention as for uploads); the
    live worker then publishes its transcript. Committing again answers the same; an empty
    recording may be committed (its transcript is empty)."""
    async with _counted():
        committed = await live.commit(caller, recording_id)
    return LiveCommit.of(committed)


@router.post(
    "/{recording_id}/cancel",
    status_code=204,
    responses=_documented({404: NOT_FOUND, 409: "`recording_ended`: it was committed"}),
)
async def cancel_live(recording_id: str, caller: CallerDep, live: LiveDep) -> Response:
    """Drop the recording: nothing is stored and no transcript follows (again: no-op)."""
    async with _counted():
        await live.cancel(caller, recording_id)
    return Response(status_code=204)


async def _read_limited(request: Request, limit: int) -> bytes:
    """The body, refused as soon as it is known to pass `limit` (declared or streamed)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    body = bytearray()
    async for piece in request.stream():
        body += piece
        if len(body) > limit:
            raise _too_large(limit)
    return bytes(body)


def _too_large(limit: int) -> ChunkTooLarge:
    return ChunkTooLarge(
        f"a live audio chunk may hold at most {limit} bytes; send it in smaller pieces"
    )
