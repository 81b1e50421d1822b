"""Submit audio, read and search transcripts, export them: always the caller's own."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Query, Response, UploadFile
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import DBAPIError

from whisp_gateway.api.deps import (
    AudioDep,
    HubDep,
    LimitedUser,
    QueueDep,
    QuotaDep,
    RepoDep,
    SettingsDep,
)
from whisp_gateway.api.responses import SIGNED_IN, UPLOAD, errors
from whisp_gateway.auth import CurrentUser
from whisp_gateway.clients import Submitted
from whisp_gateway.errors import BadCursor, EmptyUpload, UploadTooLarge, not_in_history
from whisp_gateway.export import MEDIA_TYPES, Format, render
from whisp_gateway.queue_watch import QueueWatcher
from whisp_gateway.repository import Repository
from whisp_gateway.repository.models import TranscriptPage, TranscriptQuery, User
from whisp_gateway.user_options import options_for
from whisp_gateway.waiter import wait_for_transcript
from whisp_shared.logs import get_logger
from whisp_shared.options import RecordingForm, RecordingOptions
from whisp_shared.queue import QueuePosition, RecordingAccepted
from whisp_shared.views import Status, Transcript

log = get_logger(__name__)

router = APIRouter(prefix="/api", tags=["transcripts"], responses=errors(*SIGNED_IN))

UPLOAD_NOTES = {
    400: "`bad_request`: the multipart form could not be parsed",
    413: "`upload_too_large` (this gateway's limit), `file_too_large` or `audio_too_long` "
    "(the audio service's)",
    422: "`empty_upload` (a zero-length file), `undecodable_audio` (not audio, or cut "
    "short) or `invalid_request` (a bad form field)",
    429: "`rate_limited` (too many requests; honour `Retry-After`) or `quota_exceeded` "
    "(today's audio seconds are used up; `Retry-After`: the next UTC midnight)",
    503: "`audio_unavailable` (the audio service), `unavailable` (its bus) or "
    "`gateway_stopping` (while waiting); retry",
    504: "`transcription_timeout` (`?wait=true`): not transcribed in time; it will still "
    "reach the history",
}
"""What an upload can be refused with (also under `/v1`, in OpenAI's shape there)."""
UPLOAD_REFUSALS = errors(*UPLOAD, 504, notes=UPLOAD_NOTES)
EXPORT_TYPES = {
    "content": {
        media.split(";")[0]: {"schema": {"type": "string"}} for media in MEDIA_TYPES.values()
    },
    "description": "The caller's transcripts in the format asked for (as a download)",
}


class SubmitResult(Submitted):
    queue: QueuePosition | None = None
    """Where it waits for a transcription worker as it was accepted (`recording.queued` live
    events follow while it waits); None when Redis could not say, a worker already has it,
    or with `?wait=true`."""
    transcript: Transcript | None = None
    """With `?wait=true`: the transcript once transcribed (or failed)."""


async def read_upload(file: UploadFile, limit: int) -> bytes:
    """Read at most `limit` bytes; refuse (413) before buffering anything larger."""
    chunks, size = [], 0
    while chunk := await file.read(1 << 20):
        size += len(chunk)
        if size > limit:
            raise UploadTooLarge(f"the file is larger than {limit // 2**20} MiB")
        chunks.append(chunk)
    if not size:
        raise EmptyUpload("the uploaded file is empty")
    return b"".join(chunks)


async def note_accepted(
    repo: Repository, user_id: str, accepted: RecordingAccepted, options: RecordingOptions
) -> None:
    """Its history row ("processing") at once, so `Location` answers from the first reply.
    The audio is already accepted: a database away now must not refuse it (the client would
    send it again); the projection writes the row when the recording's event arrives."""
    try:
        await repo.accepted(user_id, accepted.recording_id, accepted.duration_s, options.route())
    except (DBAPIError, ConnectionRefusedError) as exc:
        log.warning("history_row_deferred", recording_id=accepted.recording_id, error=str(exc))


def transcript_location(recording_id: str) -> str:
    return f"/api/transcripts/{recording_id}"


async def submit_audio(
    user: User,
    file: UploadFile,
    options: RecordingOptions,
    wait: bool,
    settings: SettingsDep,
    audio: AudioDep,
    hub: HubDep,
    repo: RepoDep,
    quota: QuotaDep,
    queue: QueueWatcher | None = None,
) -> SubmitResult:
    """Upload to the audio service with the options completed by the user's own settings;
    with `wait`, block until the transcript (or 504), else answer at once with its place in
    the queue. With `queue`, the owner's pages hear where it waits until a worker takes it.
    Refused (429) when the user's audio for today is used up; an accepted clip counts its
    decoded length against it."""
    await quota.check(user)
    data = await read_upload(file, settings.max_upload_bytes)
    name = file.filename or "audio"
    content_type = file.content_type or "application/octet-stream"
    options = await options_for(repo, user.id, options)
    async with hub.subscribe(user.id) as sub:
        accepted = await audio.submit(user.id, data, name, content_type, options)
        await quota.add(user.id, accepted.duration_s, accepted.recording_id)
        await note_accepted(repo, user.id, accepted, options)
        place = await queue.accepted(user.id, accepted) if queue is not None else None
        result = SubmitResult(recording_id=accepted.recording_id, duration_s=accepted.duration_s)
        if not wait:
            return result.model_copy(update={"queue": place})
        transcript = await wait_for_transcript(sub, result.recording_id, settings.wait_timeout_s)
    return result.model_copy(update={"transcript": transcript})


@router.post(
    "/recordings",
    status_code=202,
    responses={
        201: {
            "model": SubmitResult,
            "description": "With `?wait=true`: transcribed (or "
            "failed); `transcript` says which. `Location`: the transcript",
        },
        202: {
            "description": "Accepted and queued; `Location` is the transcript's address "
            "(`processing` until a worker is done), `queue` where it waits"
        },
        **UPLOAD_REFUSALS,
    },
)
async def create_recording(
    user: LimitedUser,
    settings: SettingsDep,
    audio: AudioDep,
    hub: HubDep,
    repo: RepoDep,
    quota: QuotaDep,
    queue: QueueDep,
    response: Response,
    file: Annotated[UploadFile, File(description="Audio: WAV, FLAC, MP3, OGG/Opus, WebM/Opus")],
    options: Annotated[RecordingForm, Form()],
    wait: Annotated[bool, Query(description="Block until the transcript is ready")] = False,
) -> SubmitResult:
    """Your vocabulary, replacements, audio policy and language (`/api/me/settings`) apply
    to every upload; form fields set here add to them (a `language` here wins). The answer
    (202) says where it waits for a transcription worker (`queue`); while it does, your
    event stream (`/api/events`) gets `recording.queued` each time that changes, and the
    transcript's address (`Location`) answers with its state."""
    result = await submit_audio(user, file, options, wait, settings, audio, hub, repo, quota, queue)
    response.headers["Location"] = transcript_location(result.recording_id)
    if wait:
        response.status_code = 201
    return result


@router.get(
    "/transcripts",
    responses=errors(400, 422, notes={400: "`bad_cursor`: a cursor this listing did not hand out"}),
)
async def list_transcripts(
    user: CurrentUser, repo: RepoDep, query: Annotated[TranscriptQuery, Query()]
) -> TranscriptPage:
    try:
        return await repo.page(user.id, query)
    except ValueError as exc:
        raise BadCursor(str(exc)) from exc


class ExportQuery(BaseModel):
    format: Format = "jsonl"
    q: str | None = Field(default=None, max_length=200)  # as TranscriptQuery: 422, not 500
    agent_id: str | None = Field(default=None, max_length=64)  # as RecordingOptions
    status: Status | None = None
    since: datetime | None = None
    until: datetime | None = None


@router.get(
    "/transcripts/export",
    response_class=StreamingResponse,
    responses={200: EXPORT_TYPES, **errors(422)},
)
async def export_transcripts(
    user: CurrentUser, repo: RepoDep, params: Annotated[ExportQuery, Depends()]
) -> StreamingResponse:
    query = TranscriptQuery(
        q=params.q,
        agent_id=params.agent_id,
        status=params.status,
        since=params.since,
        until=params.until,
    )
    filename = f"whisptt-transcripts.{params.format}"
    return StreamingResponse(
        render(repo.iterate(user.id, query), params.format),
        media_type=MEDIA_TYPES[params.format],
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get("/transcripts/{recording_id}", responses=errors(404, 422))
async def get_transcript(user: CurrentUser, repo: RepoDep, recording_id: str) -> Transcript:
    found = await repo.get(user.id, recording_id)
    if found is None:
        raise not_in_history(recording_id)
    return found


@router.delete(
    "/transcripts/{recording_id}",
    status_code=204,
    responses=errors(
        404,
        422,
        502,
        503,
        notes={503: "`audio_unavailable`: the audio could not be deleted yet; nothing is gone"},
    ),
)
async def delete_transcript(
    user: CurrentUser, repo: RepoDep, audio: AudioDep, recording_id: str
) -> None:
    if await repo.get(user.id, recording_id) is None:
        raise not_in_history(recording_id)
    # Audio first: if the audio service is down (503), nothing is gone and a retry works.
    await audio.delete(user.id, recording_id)
    await repo.delete(user.id, recording_id)
