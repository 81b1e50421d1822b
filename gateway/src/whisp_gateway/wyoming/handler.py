"""One Wyoming connection: `describe` → `info`; `transcribe`, `audio-start`, `audio-chunk`…,
`audio-stop` → `transcript` (with `transcript-start`/`-chunk`/`-stop` when streaming).

The audio takes the live path as it arrives: a `RealtimeSession` (the Realtime socket's
own logic) opens a live recording at the first audio, appends as chunks come and commits
at `audio-stop`, so a worker has decoded nearly everything by then. What it would send a
Realtime client is mapped to Wyoming here: settled text (`…transcription.delta`) becomes
`transcript-chunk`, the stored transcript (`…completed`) `transcript`, a failure
(`…failed`) an `error`.

Errors: a bad event (unknown type, wrong field, a chunk that is not whole frames) gets an
`error` and the connection goes on; a broken frame gets an `error` and a close. A request
the server cannot finish (audio service away, rate limit, daily quota used up, a failed or
late transcript) gets an `error` when it happens and the connection closes at
`audio-stop`, since Home Assistant waits for a `transcript` until the connection ends.
Nothing escapes `run()`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from wyoming.asr import Transcript, TranscriptChunk, TranscriptStart, TranscriptStop
from wyoming.error import Error
from wyoming.event import Event
from wyoming.ping import Pong
from wyoming.server import AsyncEventHandler

from whisp_gateway.quota import Quota
from whisp_gateway.realtime.protocol import ProtocolError, Transcription
from whisp_gateway.realtime.session import RealtimeSession
from whisp_gateway.user_options import options_for
from whisp_gateway.wyoming.access import Caller, Context
from whisp_gateway.wyoming.audio import RATE, AudioFormat, UtteranceAudio
from whisp_gateway.wyoming.frames import FrameError, GuardedReader, read_frame
from whisp_gateway.wyoming.info import PROGRAM, describe
from whisp_shared.codes import ErrorCode
from whisp_shared.errors import WhispError
from whisp_shared.logs import get_logger
from whisp_shared.options import LANGUAGE_PATTERN, MAX_PROMPT_CHARS

log = get_logger(__name__)

CONNECTIONS = Gauge("whisp_gateway_wyoming_connections", "Open Wyoming connections.")
ERRORS = Counter("whisp_gateway_wyoming_errors_total", "Wyoming `error` events, by code.", ["code"])
FINAL_SECONDS = Histogram(
    "whisp_gateway_wyoming_final_seconds",
    "From `audio-stop` to the `transcript` sent back.",
    buckets=(0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30),
)
LINGER_S = 1.0
DELTA = "conversation.item.input_audio_transcription.delta"
COMPLETED = "conversation.item.input_audio_transcription.completed"
FAILED = "conversation.item.input_audio_transcription.failed"


class TranscribeData(BaseModel):
    """`transcribe`: the model (one is served), the language, and Home Assistant's names
    and terms, which become the recogniser's spelling hints."""

    model_config = ConfigDict(extra="ignore")

    name: str | None = Field(default=None, max_length=128)
    language: str | None = Field(default=None, max_length=16, pattern=LANGUAGE_PATTERN)
    transcript_names: list[str] | None = Field(default=None, max_length=1_000)
    transcript_terms: list[str] | None = Field(default=None, max_length=1_000)

    def transcription(self) -> Transcription:
        hints = [*(self.transcript_names or ()), *(self.transcript_terms or ())]
        prompt = ", ".join(h.strip() for h in hints if h.strip())[:MAX_PROMPT_CHARS] or None
        return Transcription(model=self.name, language=self.language, prompt=prompt)


class SelectData(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str = Field(max_length=128)


def _valid(model: type[Any], data: dict[str, Any]) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "data"
        raise ProtocolError(ErrorCode.INVALID_EVENT, f"{where}: {first['msg']}", where) from None


@dataclass
class Utterance:
    """One `audio-start` … `audio-stop`."""

    audio: UtteranceAudio
    language: str | None = None
    """As `transcribe` asked (said back in `transcript`)."""
    item_id: str | None = None
    """The live recording, once committed (the session says so with `…committed`)."""
    failed: bool = False
    """An `error` was sent: the rest is not taken, and `audio-stop` closes."""
    outcome: asyncio.Future[str] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class WyomingHandler(AsyncEventHandler):
    def __init__(
        self, reader: GuardedReader, writer: asyncio.StreamWriter, context: Context
    ) -> None:
        super().__init__(reader, writer)
        self.guarded = reader
        self.context = context
        self.settings = context.settings
        self.peer = str((writer.get_extra_info("peername") or ("?",))[0])
        self.request = TranscribeData()
        self.utterance: Utterance | None = None
        self.waiting: dict[str, Utterance] = {}
        """Committed utterances by recording id, until their transcript comes."""
        self.session: RealtimeSession | None = None
        self.handlers: dict[str, Callable[[Event], Awaitable[bool]]] = {
            "describe": self._describe,
            "ping": self._ping,
            "select-program": self._select,
            "transcribe": self._transcribe,
            "audio-start": self._audio_start,
            "audio-chunk": self._audio_chunk,
            "audio-stop": self._audio_stop,
        }

    async def run(self) -> None:
        """Serve until the client leaves, a frame breaks or a request cannot finish."""
        CONNECTIONS.inc()
        try:
            caller = await self.context.admit(self.peer)
            async with self.context.hub.connect(caller.user.id) as connection:
                self.session = self._session(caller)
                relay = asyncio.create_task(self.session.relay(connection))
                try:
                    await self._serve()
                finally:
                    relay.cancel()
                    with suppress(asyncio.CancelledError):
                        await relay
                    with suppress(WhispError):
                        await self.session.close()
        except ProtocolError as exc:  # refused before it could say anything
            await self._error(exc.code, exc.message)
        except (ConnectionError, asyncio.CancelledError):
            pass
        except Exception:  # a bug must end one connection, never the server
            log.exception("wyoming: connection failed", client=self.peer)
        finally:
            CONNECTIONS.dec()
            await self._close()

    async def _close(self) -> None:
        """Half-close, then drop what the client still sends for a moment: closing a socket
        with unread data resets it, and a reset can destroy the last `error` in flight."""
        with suppress(Exception):
            if self.writer.can_write_eof():
                self.writer.write_eof()
            async with asyncio.timeout(LINGER_S):
                while await self.reader.read(1 << 16):
                    pass
        self.writer.close()

    def _session(self, caller: Caller) -> RealtimeSession:
        # The counters the HTTP doors use (Redis), under the gateway's own `web.quota`.
        quota = Quota(self.context.limiter.redis, self.context.gateway.quota)

        async def before_item() -> None:
            await self.context.before_utterance(caller.user)
            await quota.check(caller.user)

        return RealtimeSession(
            caller.user.id,
            self.context.audio,
            self._from_session,
            route=caller.route,
            before_item=before_item,
            count=partial(quota.add, caller.user.id),
            rate=RATE,
            resolve=partial(options_for, self.context.repo, caller.user.id),
        )

    async def _serve(self) -> None:
        while True:
            try:
                async with asyncio.timeout(self.settings.idle_timeout_s):
                    event = await read_frame(self.guarded)
            except TimeoutError:
                await self._error(ErrorCode.IDLE_TIMEOUT, "nothing arrived for too long")
                return
            except FrameError as exc:
                await self._error(exc.code, exc.message)
                return
            if event is None or not await self.handle_event(event):
                return

    async def handle_event(self, event: Event) -> bool:
        """Act on one event; False ends the connection."""
        handler = self.handlers.get(event.type)
        try:
            if handler is None:
                raise ProtocolError(
                    ErrorCode.UNKNOWN_EVENT, f"unsupported event type: {event.type!r}"[:200]
                )
            return await handler(event)
        except ProtocolError as exc:
            await self._error(exc.code, exc.message)
            return True
        except WhispError as exc:  # the audio service or the rate limit: this request fails
            await self._error(str(exc.code), exc.message)
            if self.utterance is not None:
                self.utterance.failed = True
            return True

    # --- events ----------------------------------------------------------------------

    async def _describe(self, _event: Event) -> bool:
        await self.write_event(describe(self.settings).event())
        return True

    async def _ping(self, event: Event) -> bool:
        await self.write_event(Pong(text=event.data.get("text")).event())
        return True

    async def _select(self, event: Event) -> bool:
        chosen: SelectData = _valid(SelectData, event.data)
        if chosen.name != PROGRAM:
            raise ProtocolError(
                ErrorCode.INVALID_EVENT, f"no program {chosen.name!r} here (only {PROGRAM!r})"
            )
        return True

    async def _transcribe(self, event: Event) -> bool:
        self.request = _valid(TranscribeData, event.data)
        return True

    async def _audio_start(self, event: Event) -> bool:
        if self.utterance is not None:
            raise ProtocolError(
                ErrorCode.INVALID_EVENT, "audio is already streaming: send audio-stop first"
            )
        await self._begin(_valid(AudioFormat, event.data))
        return True

    async def _begin(self, fmt: AudioFormat) -> Utterance:
        assert self.session is not None
        self.session.transcription = self.request.transcription()
        audio = UtteranceAudio(fmt, self.settings.max_audio_s, self.settings.max_audio_bytes)
        self.utterance = Utterance(audio, language=self.request.language)
        await self._started(self.request.language)
        return self.utterance

    async def _audio_chunk(self, event: Event) -> bool:
        fmt: AudioFormat = _valid(AudioFormat, event.data)
        # A client that skips audio-start: its first chunk says the format.
        utterance = self.utterance or await self._begin(fmt)
        if utterance.failed:
            return True
        was_full = utterance.audio.full
        await self._append(utterance.audio.add(fmt, event.payload or b""))
        if utterance.audio.full and not was_full:
            log.info(
                "wyoming: audio limit reached; transcribing what came",
                client=self.peer,
                seconds=round(utterance.audio.seconds, 2),
                bytes=utterance.audio.bytes_in,
            )
            await self._commit()
        return True

    async def _audio_stop(self, _event: Event) -> bool:
        utterance, language = self.utterance, self.request.language
        self.request = TranscribeData()  # the next request says its own
        if utterance is None:  # no audio came at all
            await self._started(language)
            await self._final("", language)
            return True
        if utterance.failed:  # its error was sent: end, so the client stops waiting
            self.utterance = None
            return False
        stopped = time.perf_counter()
        try:
            text = await self._finish(utterance)
        except (ProtocolError, WhispError) as exc:
            await self._error(str(exc.code), exc.message)
            return False
        await self._final(text, utterance.language)
        FINAL_SECONDS.observe(time.perf_counter() - stopped)
        return True

    async def _finish(self, utterance: Utterance) -> str:
        """The rest of the audio sent, the recording committed, its transcript."""
        try:
            await self._append(utterance.audio.rest())
            await self._commit()
        finally:
            self.utterance = None
        if utterance.item_id is None:  # only empty chunks: no recording was opened
            return ""
        try:
            async with asyncio.timeout(self.context.gateway.wait_timeout_s):
                return await utterance.outcome
        except TimeoutError:
            self.waiting.pop(utterance.item_id, None)
            message = "the transcript did not come in time"
            raise ProtocolError(ErrorCode.TRANSCRIPTION_TIMEOUT, message) from None

    # --- the live path -------------------------------------------------------------------

    async def _append(self, pcm: bytes) -> None:
        assert self.session is not None
        assert self.utterance is not None
        if not pcm:
            return
        try:
            await self.session.append_pcm(pcm)
        except WhispError as exc:
            if exc.code != ErrorCode.MAX_DURATION_REACHED:
                raise
            # The audio service committed the recording at its own limit: as ours.
            self.utterance.audio.full = True

    async def _commit(self) -> None:
        """Commit the open recording, if one was opened and is still open."""
        assert self.session is not None
        if self.session.current is not None:
            await self.session.commit()

    async def _from_session(self, event: dict[str, Any]) -> None:
        """What the session would tell a Realtime client, said in Wyoming."""
        kind, item_id = str(event["type"]), str(event.get("item_id"))
        if kind == "input_audio_buffer.committed" and self.utterance is not None:
            self.utterance.item_id = item_id
            self.waiting[item_id] = self.utterance
        elif kind == DELTA and self.settings.streaming and self._ours(item_id):
            with suppress(ConnectionError):
                await self.write_event(TranscriptChunk(text=event["delta"]).event())
        elif kind == COMPLETED and (waiting := self.waiting.pop(item_id, None)):
            waiting.outcome.set_result(event["transcript"])
        elif kind == FAILED and (waiting := self.waiting.pop(item_id, None)):
            error = event["error"]
            waiting.outcome.set_exception(ProtocolError(error["code"], error["message"]))

    def _ours(self, item_id: str) -> bool:
        """A delta of the utterance still streaming or waiting for its transcript (not of
        one given up on)."""
        current = self.session.current if self.session else None
        return (current is not None and current.recording_id == item_id) or (
            item_id in self.waiting
        )

    # --- answers -------------------------------------------------------------------------

    async def _started(self, language: str | None) -> None:
        if self.settings.streaming:
            await self.write_event(TranscriptStart(language=language).event())

    async def _final(self, text: str, language: str | None) -> None:
        await self.write_event(Transcript(text=text, language=language).event())
        if self.settings.streaming:
            await self.write_event(TranscriptStop().event())

    async def _error(self, code: str, message: str) -> None:
        ERRORS.labels(code).inc()
        with suppress(ConnectionError):
            await self.write_event(Error(text=message, code=code).event())
