"""OpenAI's audio API on top of the same bus and workers: any OpenAI SDK works unchanged.

`POST /v1/audio/transcriptions` accepts OpenAI's form (file, model, language, prompt,
response_format, temperature, timestamp_granularities[], stream) and answers in the format
asked for; errors use OpenAI's `{"error": {...}}` shape (the shared handler renders every
error under `/v1` that way) so SDKs raise the usual exceptions.

Every model name OpenAI clients send is served by the local engine. With `stream=true`
(ignored for `whisper-1`, as OpenAI does) the answer is SSE: a `transcript.text.delta` per
segment, then `transcript.text.done`. A clip whose speech fits the short window is decoded
in one pass, so its segments come together, right after it is transcribed.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from pydantic import ValidationError

from whisp_gateway.api.deps import (
    AudioDep,
    HubDep,
    LimitedUser,
    QuotaDep,
    RepoDep,
    SettingsDep,
)
from whisp_gateway.api.recordings import UPLOAD_NOTES, submit_audio
from whisp_gateway.api.responses import UPLOAD, errors
from whisp_gateway.export import subtitles
from whisp_shared.codes import ErrorCode
from whisp_shared.events import Segment
from whisp_shared.http_errors import STATUS_CODES, error_response
from whisp_shared.options import RecordingOptions
from whisp_shared.views import Transcript

ResponseFormat = Literal["json", "text", "srt", "vtt", "verbose_json"]
MODELS = ("whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe", "tiny.en")
"""What `/v1/models` lists: OpenAI's transcription model names, all served locally."""
LANGUAGE_NAMES = {
    "en": "english",
    "de": "german",
    "fr": "french",
    "es": "spanish",
    "it": "italian",
    "nl": "dutch",
    "pt": "portuguese",
    "ja": "japanese",
}
CLIENT_ERRORS = {
    ErrorCode.UNDECODABLE_AUDIO,
    ErrorCode.AUDIO_TOO_LONG,
    ErrorCode.AUDIO_TOO_LARGE,
    ErrorCode.UNSUPPORTED_MEDIA_TYPE,
    ErrorCode.EMPTY_UPLOAD,
    ErrorCode.UPLOAD_TOO_LARGE,
    ErrorCode.INVALID_REQUEST,
}
"""Failed transcripts that are the caller's fault (400); the rest are ours (502/503)."""
RETRYABLE_ERRORS = {
    ErrorCode.AUDIO_UNAVAILABLE,
    ErrorCode.UPSTREAM_UNAVAILABLE,
    ErrorCode.UPSTREAM_RATE_LIMITED,
    ErrorCode.TRANSIENT_ERROR,
    ErrorCode.UNAVAILABLE,
}


def failure_status(code: ErrorCode) -> int:
    return 400 if code in CLIENT_ERRORS else 503 if code in RETRYABLE_ERRORS else 502


OPENAI_PREFIX = "/v1"
router = APIRouter(
    prefix=OPENAI_PREFIX, tags=["openai-compatible"], responses=errors(500, openai=True)
)
TRANSCRIPTION_REFUSALS = errors(
    *UPLOAD,
    504,
    openai=True,
    notes={
        **UPLOAD_NOTES,
        400: "`bad_request` (an unparsable form), or a transcript that failed through the "
        "caller's fault (`undecodable_audio`, `audio_too_long`, …)",
        502: "the transcription failed on our side (`permanent_error`, `gave_up`, …)",
    },
)
"""The upload's refusals in OpenAI's `{"error": {...}}` shape, plus failed transcripts."""
TRANSCRIPTION = {
    "description": "The transcript in the `response_format` asked for",
    "content": {
        "application/json": {"schema": {"type": "object"}},
        "text/plain": {"schema": {"type": "string"}},
        "text/vtt": {"schema": {"type": "string"}},
    },
}


@router.get("/models")
async def list_models() -> dict[str, Any]:
    return {
        "object": "list",
        "data": [{"id": m, "object": "model", "created": 0, "owned_by": "whisptt"} for m in MODELS],
    }


@router.post(
    "/audio/transcriptions",
    response_model=None,
    responses={200: TRANSCRIPTION, **TRANSCRIPTION_REFUSALS},
)
async def create_transcription(
    user: LimitedUser,
    settings: SettingsDep,
    audio: AudioDep,
    hub: HubDep,
    repo: RepoDep,
    quota: QuotaDep,
    file: Annotated[UploadFile, File()],
    model: Annotated[str, Form(max_length=128)] = "whisper-1",
    language: Annotated[str | None, Form(max_length=16)] = None,
    prompt: Annotated[str | None, Form(max_length=2000)] = None,
    response_format: Annotated[ResponseFormat, Form()] = "json",
    temperature: Annotated[float, Form(ge=0, le=1)] = 0.0,
    timestamp_granularities: Annotated[
        list[Literal["word", "segment"]] | None, Form(alias="timestamp_granularities[]")
    ] = None,
    stream: Annotated[bool, Form()] = False,
) -> Response:
    words = "word" in (timestamp_granularities or [])
    try:
        options = RecordingOptions(language=language, prompt=prompt, word_timestamps=words)
    except ValidationError as exc:  # OpenAI's form, our options: the caller's mistake (422)
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
        raise RequestValidationError(errors) from exc
    result = await submit_audio(user, file, options, True, settings, audio, hub, repo, quota)
    transcript = result.transcript
    assert transcript is not None  # waited: transcribed or failed
    if transcript.status == "failed":
        code = _known(transcript.error_code)
        return error_response(
            failure_status(code), code, transcript.error_message or "", openai=True
        )
    if stream and model != "whisper-1":
        return StreamingResponse(_stream_events(transcript), media_type="text/event-stream")
    return render(transcript, response_format, words)


async def _stream_events(transcript: Transcript) -> AsyncIterator[str]:
    """OpenAI's streamed transcription events (the SDK iterates them with `stream=True`)."""
    segments = transcript.segments or [Segment(start=0, end=0, text=transcript.text)]
    for n, segment in enumerate(s for s in segments if s.text):
        piece = segment.text if n == 0 else " " + segment.text
        yield _sse({"type": "transcript.text.delta", "delta": piece})
    usage = {"type": "tokens", "input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
    yield _sse({"type": "transcript.text.done", "text": transcript.text, "usage": usage})


def _sse(event: dict[str, Any]) -> str:
    return f"data: {json.dumps(event)}\n\n"


def _known(code: str | None) -> ErrorCode:
    try:
        return ErrorCode(code or "")
    except ValueError:
        return STATUS_CODES[500]


def render(event: Transcript, fmt: ResponseFormat, words: bool) -> Response:
    if fmt == "text":
        return PlainTextResponse(event.text)
    if fmt in ("srt", "vtt"):
        body = subtitles([(s.start, s.end, s.text) for s in event.segments], fmt)
        return PlainTextResponse(body, media_type="text/vtt" if fmt == "vtt" else "text/plain")
    if fmt == "json":
        return JSONResponse({"text": event.text})
    return JSONResponse(verbose(event, words))


def verbose(event: Transcript, words: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "task": "transcribe",
        "language": LANGUAGE_NAMES.get(event.language or "", event.language or "unknown"),
        "duration": event.duration_s or 0.0,
        "text": event.text,
        "segments": [
            {
                "id": n,
                "seek": 0,
                "start": s.start,
                "end": s.end,
                "text": s.text,
                "tokens": [],
                "temperature": 0.0,
                "avg_logprob": 0.0,
                "compression_ratio": 1.0,
                "no_speech_prob": 0.0,
            }
            for n, s in enumerate(event.segments)
        ],
    }
    if words:
        body["words"] = [
            {"word": w.word, "start": w.start, "end": w.end}
            for s in event.segments
            for w in s.words or []
        ]
    return body
