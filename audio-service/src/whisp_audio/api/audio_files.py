"""Stored recordings: `GET /audio/{id}` (the bytes), `GET/DELETE /recordings/{id}`.

An unknown id, a malformed one and another user's all get the same 404, so ids cannot
be probed. The owner asking for audio deleted after its transcript (`keep_audio: false`)
gets a 404 of its own code, `audio_not_found`. A trusted service (token, no user header)
may read any recording: that is how transcription workers fetch the audio an event points
at.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Response
from fastapi.responses import FileResponse

from whisp_audio.api.deps import CallerDep, StoreDep
from whisp_audio.api.models import RecordingInfo
from whisp_audio.errors import AudioDeleted, recording_not_found
from whisp_audio.storage import RecordingStore, StoredRecording
from whisp_shared.caller import Caller
from whisp_shared.http_errors import ERROR_RESPONSES, ErrorBody

MISSING: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "unknown id, malformed id, or not yours (same answer)"}
}
AUDIO_MISSING: dict[int | str, dict[str, Any]] = {
    404: {
        "model": ErrorBody,
        "description": "`not_found`: unknown id, malformed id, or not yours (same answer); "
        "`audio_not_found`: your recording's audio was deleted once transcribed (keep_audio off)",
    }
}


def _owned(store: RecordingStore, caller: Caller, recording_id: str) -> StoredRecording:
    meta = store.get(recording_id)
    if meta is None or not caller.may_access(meta.user_id):
        raise recording_not_found()
    return meta


router = APIRouter(tags=["audio"], responses=ERROR_RESPONSES)


@router.get("/audio/{recording_id}", response_class=FileResponse, responses=AUDIO_MISSING)
async def get_audio(
    recording_id: str,
    caller: CallerDep,
    store: StoreDep,
    variant: Literal["wav", "original"] = "wav",
) -> FileResponse:
    """The 16 kHz mono WAV (default), or the original exactly as uploaded."""
    meta = _owned(store, caller, recording_id)
    path = store.path(meta, variant)
    if meta.audio_deleted_at is not None or not path.is_file():
        raise AudioDeleted("this recording's audio was deleted once it was transcribed")
    media_type = meta.content_type if path.name != "audio.wav" else "audio/wav"
    return FileResponse(
        path,
        media_type=media_type,
        filename=f"{recording_id}{path.suffix}",
        headers={"Cache-Control": "private, no-store"},
    )


@router.get("/recordings/{recording_id}", responses=MISSING)
async def get_recording(recording_id: str, caller: CallerDep, store: StoreDep) -> RecordingInfo:
    meta = _owned(store, caller, recording_id)
    return RecordingInfo(**meta.model_dump(exclude={"original_name", "wav_size"}))


@router.delete("/recordings/{recording_id}", status_code=204, responses=MISSING)
async def delete_recording(recording_id: str, caller: CallerDep, store: StoreDep) -> Response:
    _owned(store, caller, recording_id)
    if not store.delete(recording_id):
        raise recording_not_found()
    return Response(status_code=204)
