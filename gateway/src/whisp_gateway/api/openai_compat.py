"""OpenAI's audio API on top of the same bus and workers: any OpenAI SDK works unchanged.

`POST /v1/audio/transcriptions` accepts OpenAI's form (file, model, language, prompt,
response_format, temperature, timestamp_granularities[]) and answers in the format
asked for; errors use OpenAI's `{"error": {...}}` shape so SDKs raise the usual
exceptions.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, HTTPException, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.routing import APIRoute

from whisp_gateway.api.recordings import submit_audio
from whisp_gateway.dependencies import AudioDep, HubDep, LimitedUser, SettingsDep
from whisp_gateway.export import subtitles
from whisp_gateway.upstream import SubmitOptions
from whisp_shared.events import TranscriptionFailed, TranscriptReady

ResponseFormat = Literal["json", "text", "srt", "vtt", "verbose_json"]
MODELS = ("whisper-1", "tiny.en")
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
    "undecodable_audio",
    "audio_too_long",
    "audio_too_large",
    "unsupported_media_type",
    "empty_upload",
    "upload_too_large",
    "invalid_request",
}


def openai_error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    kind = "invalid_request_error" if status < 500 else "server_error"
    return JSONResponse(
        {"error": {"message": message, "type": kind, "param": None, "code": code}},
        status_code=status,
        headers=headers,
    )


def from_http_exception(exc: HTTPException) -> JSONResponse:
    detail: dict[str, object] = exc.detail if isinstance(exc.detail, dict) else {}
    return openai_error(
        exc.status_code,
        str(detail.get("code", "error")),
        str(detail.get("message", exc.detail)),
        dict(exc.headers or {}),
    )


class OpenAIErrorRoute(APIRoute):
    """Errors raised before the handler runs (auth 401, rate limit 429, a bad form 422) in
    OpenAI's shape too, with their status and headers (Retry-After)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handle(request)
            except HTTPException as exc:
                return from_http_exception(exc)
            except RequestValidationError as exc:
                message = "; ".join(
                    f"{'.'.join(str(p) for p in e.get('loc', ())[1:])}: {e.get('msg', 'invalid')}"
                    for e in list(exc.errors())[:5]
                )
                return openai_error(422, "invalid_request", message or "the request is not valid")

        return route


router = APIRouter(prefix="/v1", tags=["openai-compatible"], route_class=OpenAIErrorRoute)


@router.get("/models")
async def list_models() -> dict[str, Any]:
    return {
        "object": "list",
        "data": [{"id": m, "object": "model", "created": 0, "owned_by": "whisptt"} for m in MODELS],
    }


@router.post("/audio/transcriptions", response_model=None)
async def create_transcription(
    user: LimitedUser,
    settings: SettingsDep,
    audio: AudioDep,
    hub: HubDep,
    file: Annotated[UploadFile, File()],
    model: Annotated[str, Form()] = "whisper-1",
    language: Annotated[str | None, Form(max_length=16)] = None,
    prompt: Annotated[str | None, Form(max_length=2000)] = None,
    response_format: Annotated[ResponseFormat, Form()] = "json",
    temperature: Annotated[float, Form(ge=0, le=1)] = 0.0,
    timestamp_granularities: Annotated[
        list[Literal["word", "segment"]] | None, Form(alias="timestamp_granularities[]")
    ] = None,
) -> Response:
    words = "word" in (timestamp_granularities or [])
    options = SubmitOptions(language=language, prompt=prompt, word_timestamps=words)
    result = await submit_audio(user.id, file, options, True, settings, audio, hub)
    outcome = result.outcome
    if isinstance(outcome, TranscriptionFailed):
        status = 400 if outcome.code in CLIENT_ERRORS else 503 if outcome.retryable else 502
        return openai_error(status, outcome.code, outcome.message)
    assert isinstance(outcome, TranscriptReady)
    return render(outcome, response_format, words)


def render(event: TranscriptReady, fmt: ResponseFormat, words: bool) -> Response:
    if fmt == "text":
        return PlainTextResponse(event.text)
    if fmt in ("srt", "vtt"):
        body = subtitles([(s.start, s.end, s.text) for s in event.segments], fmt)
        return PlainTextResponse(body, media_type="text/vtt" if fmt == "vtt" else "text/plain")
    if fmt == "json":
        return JSONResponse({"text": event.text})
    return JSONResponse(verbose(event, words))


def verbose(event: TranscriptReady, words: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "task": "transcribe",
        "language": LANGUAGE_NAMES.get(event.language or "", event.language or "unknown"),
        "duration": event.audio_duration_s,
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
