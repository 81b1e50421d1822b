"""`POST /recordings`: a finished clip uploaded as multipart/form-data.

The body limit is enforced while the body streams in (`UploadBodyLimit`): a declared
Content-Length over it is refused before a byte is read, a chunked body as soon as it
passes it. The file itself is checked exactly after. Every answer is counted by outcome
and code (`UploadOutcomes`).
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Form

from whisp_audio.api.body_limit import UploadBodyLimit
from whisp_audio.api.deps import CallerDep, IngestDep, SettingsDep
from whisp_audio.api.models import RecordingAccepted, UploadForm
from whisp_audio.api.upload_outcomes import UploadOutcomes
from whisp_audio.settings import AudioSettings
from whisp_audio.upload_check import check_upload
from whisp_shared.http_errors import ERROR_RESPONSES, ErrorBody

FORM_OVERHEAD = 64 * 1024
"""Multipart boundaries, part headers and the small text fields, beside the file."""
UPLOAD_PATH = "/recordings"

REFUSALS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text}
    for status, text in {
        401: "`unauthorized`: missing or wrong service token",
        413: "`file_too_large` (the bytes) or `audio_too_long` (the duration)",
        415: "`unsupported_media_type`: not WAV, FLAC, MP3, Ogg, WebM or MP4 audio",
        422: "`undecodable_audio` (corrupt or empty) or `invalid_request` (a bad or unknown field)",
        503: "`unavailable` (the message bus): nothing was stored or published; retry",
    }.items()
}


def install_upload_middleware(app: FastAPI, settings: AudioSettings) -> None:
    """The body limit, inside the outcome counter (so its refusals are counted too)."""
    app.add_middleware(
        UploadBodyLimit, path=UPLOAD_PATH, limit=settings.max_upload_bytes + FORM_OVERHEAD
    )
    app.add_middleware(UploadOutcomes, path=UPLOAD_PATH)


router = APIRouter(tags=["recordings"], responses=ERROR_RESPONSES)


@router.post(UPLOAD_PATH, status_code=201, responses=REFUSALS)
async def upload_recording(
    caller: CallerDep,
    ingest: IngestDep,
    settings: SettingsDep,
    form: Annotated[UploadForm, Form(media_type="multipart/form-data")],
) -> RecordingAccepted:
    """Store the clip (original + 16 kHz mono WAV) and queue it for transcription.
    Empty option fields mean "not set"."""
    data = await form.file.read(settings.max_upload_bytes + 1)
    checked = await asyncio.to_thread(
        check_upload, data, settings.max_upload_bytes, settings.max_duration_s
    )
    accepted = await ingest.submit(
        user_id=caller.user_id,
        samples=checked.samples,
        options=form,
        source="upload",
        original=data,
        kind=checked.kind,
    )
    return RecordingAccepted.of(accepted)
