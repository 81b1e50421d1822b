"""The `openai` engine: OpenAI's (or any compatible server's) `/audio/transcriptions`.

The clip's original bytes are uploaded (not the decoded samples) so the server sees the
browser's compressed file. There is exactly one retry layer, tenacity here: the SDK's own
retries are off, so `max_attempts` is the number of requests really sent, a 429 waits the
server's `Retry-After` instead of the SDK's guess, and every retry is logged. The API key
is never logged and is scrubbed from any message built from what the server said.
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Literal

import openai
import tenacity
from pydantic import BaseModel, SecretStr, ValidationError
from tenacity import RetryCallState

from whisp_shared.errors import WhispError
from whisp_shared.events import Segment, Word
from whisp_shared.logs import get_logger
from whisp_shared.retry import retry_after_seconds
from whisp_shared.upstream import (
    UpstreamAuth,
    UpstreamBadRequest,
    UpstreamBadResponse,
    UpstreamRateLimited,
    UpstreamUnavailable,
    server_message,
)
from whisp_transcription.engines.base import Clip, TranscribeOptions, Transcription
from whisp_transcription.errors import EngineNotConfigured
from whisp_transcription.settings import OpenAISettings
from whisp_transcription.vocabulary import estimate_tokens, recogniser_prompt

log = get_logger(__name__)

_EXTENSIONS = {"wav": "wav", "wave": "wav", "vnd.wave": "wav", "webm": "webm", "ogg": "ogg",
               "opus": "ogg", "mpeg": "mp3", "mp3": "mp3", "mp4": "m4a", "m4a": "m4a",
               "flac": "flac"}  # fmt: skip
"""OpenAI picks the decoder from the upload's file name, not its Content-Type."""
_LANGUAGES = {"english": "en", "german": "de", "french": "fr", "spanish": "es", "italian": "it",
              "portuguese": "pt", "dutch": "nl", "polish": "pl", "russian": "ru", "czech": "cs",
              "ukrainian": "uk", "turkish": "tr", "swedish": "sv", "danish": "da", "greek": "el",
              "norwegian": "no", "finnish": "fi", "chinese": "zh", "japanese": "ja",
              "korean": "ko", "arabic": "ar", "hindi": "hi", "hebrew": "he"}  # fmt: skip
"""verbose_json names the language ("english"); transcripts carry ISO codes like local engines."""


class _Span(BaseModel):
    start: float
    end: float


class _Word(_Span):
    word: str


class _Segment(_Span):
    text: str


class _Verbose(BaseModel):
    """The part of verbose_json we rely on; validated strictly (the SDK does not validate)."""

    text: str
    language: str | None = None
    segments: list[_Segment] | None = None
    words: list[_Word] | None = None


class OpenAIEngine:
    name = "openai"

    def __init__(self, settings: OpenAISettings, api_key: SecretStr | None) -> None:
        self.settings = settings
        self._api_key = api_key
        self._client: openai.AsyncOpenAI | None = None
        cap = settings.max_backoff_s
        self._backoff = tenacity.wait_exponential_jitter(
            multiplier=min(0.5, cap), max=cap, jitter=min(0.5, cap)
        )

    @property
    def model_name(self) -> str:
        return self.settings.model

    @property
    def loaded(self) -> bool:
        return self._client is not None

    def load(self) -> None:
        """Build the client; fails at start (not per clip) when no key is configured."""
        if self._client is not None:
            return
        if self._api_key is None or not self._api_key.get_secret_value():
            raise EngineNotConfigured(
                "The openai engine needs an API key: set OPENAI_API_KEY or "
                "WHISP_TRANSCRIPTION__OPENAI_API_KEY (or choose engine faster-whisper)."
            )
        s = self.settings
        self._client = openai.AsyncOpenAI(
            api_key=self._api_key.get_secret_value(),
            base_url=s.base_url,
            max_retries=0,  # one retry layer only: ours
            timeout=s.timeout_s,
        )
        log.info("openai_engine_ready", model=s.model, base_url=s.base_url or "api.openai.com")

    def unload(self) -> None:
        """Nothing is held in memory but the HTTP client; drop it, `transcribe` rebuilds it."""
        self._client = None

    async def transcribe(self, clip: Clip, options: TranscribeOptions) -> Transcription:
        self.load()
        client = self._client
        assert client is not None
        s = self.settings
        granularities: list[Literal["word", "segment"]] = (
            ["word", "segment"] if options.word_timestamps else ["segment"]
        )
        # No tokenizer here: an estimate that errs short (OpenAI keeps a long prompt's end,
        # the caller's own part, anyway).
        prompt = recogniser_prompt(
            options.prompt, options.vocabulary, options.language, estimate_tokens
        )
        attempts = 0
        retrying = tenacity.AsyncRetrying(
            stop=tenacity.stop_after_attempt(s.max_attempts),
            wait=self._wait,
            retry=tenacity.retry_if_exception(_retryable),
            before_sleep=self._log_retry,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    attempts = attempt.retry_state.attempt_number
                    raw = await client.audio.transcriptions.with_raw_response.create(
                        file=(_upload_name(clip), clip.original, clip.content_type),
                        model=s.model,
                        response_format="verbose_json",
                        language=options.language or openai.omit,
                        prompt=prompt or openai.omit,
                        temperature=options.temperature,
                        timestamp_granularities=granularities,
                    )
        except openai.APIStatusError as exc:
            raise self._status_error(exc, attempts) from exc
        except openai.APIConnectionError as exc:
            what = "timed out" if isinstance(exc, openai.APITimeoutError) else "was unreachable"
            raise UpstreamUnavailable(
                f"OpenAI transcription {what} on all {attempts} attempts "
                f"(timeout {s.timeout_s:g}s, {s.base_url or 'api.openai.com'}); try again later."
            ) from exc
        return self._parse(raw.content, options)

    def _wait(self, state: RetryCallState) -> float:
        """429: exactly what Retry-After asks; otherwise exponential backoff with jitter."""
        cap = self.settings.max_backoff_s
        exc = state.outcome.exception() if state.outcome else None
        asked = (
            retry_after_seconds(exc.response.headers)
            if isinstance(exc, openai.RateLimitError)
            else None
        )
        if asked is not None:
            return min(asked, cap)
        return self._backoff(state)

    def _status_error(self, exc: openai.APIStatusError, attempts: int) -> WhispError:
        status, said = exc.status_code, self._redact(server_message(exc.body, exc.message))
        if status == 429:
            return UpstreamRateLimited(
                f"OpenAI kept rate-limiting (HTTP 429) through {attempts} attempts: {said}. "
                "Wait, lower max_concurrency, or raise the account's rate limit."
            )
        if status >= 500 or status == 408:
            return UpstreamUnavailable(
                f"OpenAI returned HTTP {status} on all {attempts} attempts; "
                "the service is struggling, try again later."
            )
        if status in (401, 403):
            return UpstreamAuth(
                f"OpenAI refused the API key (HTTP {status}); check OPENAI_API_KEY or "
                "WHISP_TRANSCRIPTION__OPENAI_API_KEY and the key's project permissions."
            )
        return UpstreamBadRequest(f"OpenAI rejected the request (HTTP {status}): {said}")

    def _parse(self, body: bytes, options: TranscribeOptions) -> Transcription:
        try:
            data = _Verbose.model_validate_json(body)
        except ValidationError as exc:
            raise UpstreamBadResponse(
                "OpenAI answered 200 but not with a verbose_json transcription (first bytes: "
                f"{self._redact(body[:120].decode(errors='replace'))!r}); is base_url right?"
            ) from exc
        spans = data.segments or []
        words: list[list[Word]] = [[] for _ in spans]
        for w in (data.words or []) if spans else []:
            words[_closest(spans, (w.start + w.end) / 2)].append(
                Word(start=w.start, end=w.end, word=w.word.strip())
            )
        per_segment = words if options.word_timestamps else [None] * len(spans)
        segments = [
            Segment(start=seg.start, end=seg.end, text=seg.text.strip(), words=seg_words)
            for seg, seg_words in zip(spans, per_segment, strict=True)
        ]
        reported = (data.language or "").strip().lower()
        code = _LANGUAGES.get(reported) or (reported if len(reported) <= 3 else None)
        language = code or options.language or reported or None
        return Transcription(text=data.text.strip(), language=language, segments=segments)

    def _redact(self, text: str) -> str:
        key = self._api_key.get_secret_value() if self._api_key else ""
        return text.replace(key, "***") if key else text

    def _log_retry(self, state: RetryCallState) -> None:
        """One line per retry (never the key): why, and how long until the next try."""
        exc = state.outcome.exception() if state.outcome else None
        log.warning(
            "openai_retry",
            attempt=state.attempt_number,
            max_attempts=self.settings.max_attempts,
            error=type(exc).__name__,
            status=getattr(exc, "status_code", None),
            wait_s=round(state.next_action.sleep, 3) if state.next_action else None,
        )


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in (408, 429) or exc.status_code >= 500
    return isinstance(exc, openai.APIConnectionError)  # includes APITimeoutError


def _upload_name(clip: Clip) -> str:
    subtype = clip.content_type.split(";")[0].strip().lower().rpartition("/")[2]
    ext = _EXTENSIONS.get(subtype.removeprefix("x-"))
    return f"{PurePath(clip.filename).stem or 'audio'}.{ext}" if ext else clip.filename


def _closest(spans: list[_Segment], t: float) -> int:
    """The first segment whose span contains `t`, else the nearest one (words in gaps)."""
    return min(range(len(spans)), key=lambda i: max(spans[i].start - t, t - spans[i].end, 0.0))
