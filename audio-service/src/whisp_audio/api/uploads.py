"""`POST /recordings`: a finished clip uploaded as multipart/form-data.

The body limit is enforced while the body streams in (`UploadBodyLimit`, installed by
`install_upload_limit`): a declared Content-Length over it is refused before a byte is
read, a chunked body as soon as it passes it. The file itself is checked exactly after.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, FastAPI, File, Form, UploadFile
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from whisp_audio import metrics
from whisp_audio.api.body_limit import UploadBodyLimit
from whisp_audio.api.deps import CallerDep, IngestDep, SettingsDep
from whisp_audio.ingest import RecordingOptions
from whisp_audio.settings import AudioSettings
from whisp_audio.upload_check import check_upload

FORM_OVERHEAD = 64 * 1024
"""Multipart boundaries, part headers and the small text fields, beside the file."""
UPLOAD_PATH = "/recordings"


class RecordingAccepted(BaseModel):
    recording_id: str
    duration_s: float
    audio_uri: str
    content_type: str


class ErrorBody(BaseModel):
    code: str
    message: str


ERRORS = {
    status: {"model": ErrorBody, "description": text}
    for status, text in {
        401: "missing or wrong service token",
        413: "`file_too_large` / `payload_too_large` / `audio_too_long`",
        415: "`unsupported_media_type`: not WAV, FLAC, MP3, Ogg, WebM or MP4 audio",
        422: "`undecodable_audio` (corrupt or empty) or `invalid_request` (a bad field)",
        503: "`bus_unavailable`: nothing was stored or published",
    }.items()
}


def install_upload_limit(app: FastAPI, settings: AudioSettings) -> None:
    app.add_middleware(
        UploadBodyLimit, path=UPLOAD_PATH, limit=settings.max_upload_bytes + FORM_OVERHEAD
    )


def uploads_router() -> APIRouter:
    router = APIRouter(tags=["recordings"])

    @router.post(
        UPLOAD_PATH,
        status_code=201,
        responses=ERRORS,  # type: ignore[arg-type]
    )
    async def upload_recording(
        caller: CallerDep,
        ingest: IngestDep,
        settings: SettingsDep,
        file: Annotated[UploadFile, File(description="the audio file; its type is sniffed")],
        agent_id: Annotated[str | None, Form()] = None,
        pipeline: Annotated[str | None, Form()] = None,
        session_id: Annotated[str | None, Form()] = None,
        language: Annotated[str | None, Form()] = None,
        word_timestamps: Annotated[bool, Form()] = False,
        prompt: Annotated[str | None, Form()] = None,
    ) -> RecordingAccepted:
        """Store the clip (original + 16 kHz mono WAV) and queue it for transcription."""
        try:
            options = RecordingOptions(
                agent_id=agent_id or None,
                pipeline=pipeline or None,
                session_id=session_id or None,
                language=language or None,
                word_timestamps=word_timestamps,
                prompt=prompt or None,
            )
        except ValidationError as exc:
            errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
            raise RequestValidationError(errors) from exc
        data = await file.read(settings.max_upload_bytes + 1)
        checked = await asyncio.to_thread(
            check_upload, data, settings.max_upload_bytes, settings.max_duration_s
        )
        accepted = await ingest.submit(
            user_id=caller.user_id,
            samples=checked.samples,
            options=options,
            source="upload",
            original=data,
            kind=checked.kind,
        )
        metrics.UPLOADS.labels("accepted", "").inc()
        return RecordingAccepted(
            recording_id=accepted.recording_id,
            duration_s=accepted.duration_s,
            audio_uri=accepted.audio_uri,
            content_type=accepted.content_type,
        )

    return router
