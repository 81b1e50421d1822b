"""Stored recordings: `GET /audio/{id}` (the bytes), `GET/DELETE /recordings/{id}`.

An unknown id, a malformed one and another user's all get the same 404, so ids cannot
be probed. A trusted service (token, no user header) may read any recording: that is
how transcription workers fetch the audio an event points at.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel

from whisp_audio.api.deps import CallerDep, StoreDep
from whisp_audio.auth import Caller
from whisp_audio.errors import not_found
from whisp_audio.storage import RecordingStore, StoredRecording


class RecordingInfo(BaseModel):
    recording_id: str
    user_id: str
    content_type: str
    duration_s: float
    size: int
    created_at: datetime
    source: str


def _owned(store: RecordingStore, caller: Caller, recording_id: str) -> StoredRecording:
    meta = store.get(recording_id)
    if meta is None or not caller.may_access(meta.user_id):
        raise not_found()
    return meta


def audio_router() -> APIRouter:
    router = APIRouter(tags=["audio"])
    missing: dict[int | str, dict[str, Any]] = {
        404: {"description": "unknown id, malformed id, or not yours (same answer)"}
    }

    @router.get("/audio/{recording_id}", response_class=FileResponse, responses=missing)
    async def get_audio(
        recording_id: str,
        caller: CallerDep,
        store: StoreDep,
        variant: Literal["wav", "original"] = "wav",
    ) -> FileResponse:
        """The 16 kHz mono WAV (default), or the original exactly as uploaded."""
        meta = _owned(store, caller, recording_id)
        path = store.path(meta, variant)
        media_type = meta.content_type if path.name != "audio.wav" else "audio/wav"
        return FileResponse(
            path,
            media_type=media_type,
            filename=f"{recording_id}{path.suffix}",
            headers={"Cache-Control": "private, no-store"},
        )

    @router.get("/recordings/{recording_id}", responses=missing)
    async def get_recording(recording_id: str, caller: CallerDep, store: StoreDep) -> RecordingInfo:
        meta = _owned(store, caller, recording_id)
        return RecordingInfo(**meta.model_dump(exclude={"original_name", "wav_size"}))

    @router.delete("/recordings/{recording_id}", status_code=204, responses=missing)
    async def delete_recording(recording_id: str, caller: CallerDep, store: StoreDep) -> Response:
        _owned(store, caller, recording_id)
        if not store.delete(recording_id):
            raise not_found()
        return Response(status_code=204)

    return router
