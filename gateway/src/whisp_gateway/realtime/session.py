"""One Realtime transcription session: client events in, audio to the audio service, text out.

Push-to-talk is `turn_detection: null`: every append after a commit opens a new item (a
live recording at the audio service); `commit` ends it and `clear` drops it. Words come
back through the gateway's hub like everything else a user sees: the worker's partials
(live-only events) become `…transcription.delta` events carrying the text that has become
stable (deltas only ever append, as OpenAI's do), and the stored transcript becomes
`…transcription.completed` (or `…failed`). The relay waits for an item's `committed`
before it completes it, so events always arrive in the protocol's order.

An item that may not be opened (`before_item` refuses: the rate limit, the daily quota) is
refused once, at its first append; the rest of that utterance's audio is dropped and its
commit refused with the same error, so a held key gets one answer when it starts and one
when it is let go, not one per chunk. Each committed item's seconds go to `count` (the
owner's daily quota).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from whisp_gateway.clients import AudioService
from whisp_gateway.hub import Connection
from whisp_gateway.realtime import protocol
from whisp_gateway.realtime.protocol import (
    PCM_RATES,
    Append,
    ClientEvent,
    ProtocolError,
    SessionUpdate,
    Transcription,
    TurnDetection,
)
from whisp_gateway.user_options import ResolveOptions
from whisp_shared.codes import ErrorCode
from whisp_shared.errors import WhispError
from whisp_shared.events import new_id
from whisp_shared.options import AgentRoute, RecordingOptions
from whisp_shared.views import TranscriptPartial, TranscriptUpdated

Send = Callable[[dict[str, Any]], Awaitable[None]]
StartItem = Callable[[], Awaitable[None]]
"""Called before an item is opened (the caller's rate limit and quota)."""
Count = Callable[[float], Awaitable[object]]
"""Called with the seconds of audio of each committed item."""


@dataclass
class Item:
    """One utterance: a live recording at the audio service."""

    recording_id: str
    committed: asyncio.Event = field(default_factory=asyncio.Event)
    sent: str = ""
    """The stable text already sent as deltas."""
    last_sequence: int = -1
    audio_bytes: int = 0


@dataclass
class RealtimeSession:
    user_id: str
    audio: AudioService
    send: Send
    route: AgentRoute = field(default_factory=AgentRoute)
    before_item: StartItem | None = None
    count: Count | None = None
    refused: WhispError | None = None
    """Why the utterance being sent may not be opened, until its commit or clear."""
    max_append_bytes: int = 1 << 20
    session_id: str = field(default_factory=lambda: f"sess_{new_id()[:24]}")
    rate: int = 24_000
    transcription: Transcription = field(default_factory=Transcription)
    vad: TurnDetection | None = None
    current: Item | None = None
    previous_item_id: str | None = None
    items: dict[str, Item] = field(default_factory=dict)
    """Items sent to the audio service whose transcript has not been delivered yet."""
    resolve: ResolveOptions = field(kw_only=True)
    """Completes each item's options with the owner's settings (`user_options.options_for`
    bound to them), read per item: a change saved meanwhile applies from the next one."""

    def session_body(self) -> dict[str, Any]:
        return protocol.session_body(self.session_id, self.rate, self.transcription, self.vad)

    async def handle(self, event: ClientEvent) -> None:
        """Act on one client event; a `ProtocolError` becomes an `error` event upstream."""
        if isinstance(event, SessionUpdate):
            await self._update(event)
        elif isinstance(event, Append):
            await self._append(event)
        elif event.type == "input_audio_buffer.commit":
            await self.commit()
        else:
            await self._clear()

    async def _update(self, event: SessionUpdate) -> None:
        audio_input = event.session.audio.input if event.session.audio else None
        if audio_input is not None:
            fmt = audio_input.format
            if fmt is not None and fmt.rate not in PCM_RATES:
                raise ProtocolError(
                    ErrorCode.UNSUPPORTED_FORMAT,
                    f"audio/pcm at {fmt.rate} Hz is not supported; use 24000 or 16000",
                    "session.audio.input.format.rate",
                )
            if fmt is not None and fmt.rate != self.rate and self.current is not None:
                raise ProtocolError(
                    ErrorCode.FORMAT_CHANGE_MID_ITEM,
                    "commit or clear the audio buffer before changing its rate",
                    "session.audio.input.format.rate",
                )
            if audio_input.turn_detection is not None:
                raise ProtocolError(
                    ErrorCode.UNSUPPORTED_TURN_DETECTION,
                    "only push-to-talk (turn_detection: null, commit on release) is served",
                    "session.audio.input.turn_detection",
                )
            if fmt is not None:
                self.rate = fmt.rate
            if audio_input.transcription is not None:
                self.transcription = audio_input.transcription
        await self.send(protocol.server_event("session.updated", session=self.session_body()))

    async def _append(self, event: Append) -> None:
        await self.append_pcm(event.pcm())

    async def append_pcm(self, pcm: bytes) -> None:
        """PCM16 mono at `rate` into the open item, opening one first (the Wyoming server
        feeds its converted audio in here too)."""
        if len(pcm) > self.max_append_bytes:
            raise ProtocolError(
                ErrorCode.AUDIO_TOO_LARGE,
                f"one append may carry at most {self.max_append_bytes} bytes of audio",
                "audio",
            )
        if len(pcm) % 2:
            raise ProtocolError(ErrorCode.INVALID_AUDIO, "PCM16 audio has an even number of bytes")
        if not pcm:
            return
        if self.current is None:
            if self.refused is not None:
                return  # said at its first append; its commit says it again
            if self.before_item is not None:
                try:
                    await self.before_item()
                except WhispError as exc:
                    self.refused = exc
                    raise
            options = await self.resolve(
                RecordingOptions(
                    language=self.transcription.language,
                    prompt=self.transcription.prompt,
                    **self.route.model_dump(),
                )
            )
            recording_id = await self.audio.live_start(self.user_id, options, self.rate)
            self.current = Item(recording_id)
            self.items[recording_id] = self.current
        item = self.current
        item.audio_bytes += len(pcm)
        try:
            await self.audio.live_append(self.user_id, item.recording_id, pcm)
        except WhispError as exc:
            if exc.code == ErrorCode.MAX_DURATION_REACHED:
                # The audio service committed the item at its maximum length: say so, as a
                # server-side commit; the next append starts a new item.
                await self._committed(item)
            raise

    async def commit(self) -> None:
        """End the open item (the key was let go); its transcript follows through `relay`."""
        item = self.current
        if item is None and self.refused is not None:
            refused, self.refused = self.refused, None
            raise refused
        if item is None:
            raise ProtocolError(
                ErrorCode.INPUT_AUDIO_BUFFER_COMMIT_EMPTY,
                "the audio buffer is empty: append audio before committing",
            )
        await self.audio.live_commit(self.user_id, item.recording_id)
        await self._committed(item)

    async def _committed(self, item: Item) -> None:
        self.current = None
        await self.send(protocol.committed(item.recording_id, self.previous_item_id))
        self.previous_item_id = item.recording_id
        item.committed.set()
        if self.count is not None:
            await self.count(item.audio_bytes / 2 / self.rate)

    async def _clear(self) -> None:
        item, self.current, self.refused = self.current, None, None
        if item is not None:
            self.items.pop(item.recording_id, None)
            await self.audio.live_cancel(self.user_id, item.recording_id)
        await self.send(protocol.server_event("input_audio_buffer.cleared"))

    async def close(self) -> None:
        """The socket went away mid-utterance: drop the open item (nobody awaits it)."""
        item, self.current = self.current, None
        if item is not None:
            await self.audio.live_cancel(self.user_id, item.recording_id)

    async def relay(self, connection: Connection) -> None:
        """Turn this user's partials and stored transcripts for our items into events."""
        while (entry := await connection.queue.get()) is not None:
            event = entry.event
            item = self.items.get(event.recording_id)
            if item is None:
                continue
            if isinstance(event, TranscriptPartial):
                await self._partial(item, event)
            elif isinstance(event, TranscriptUpdated) and event.transcript.status != "processing":
                await item.committed.wait()
                self.items.pop(item.recording_id, None)
                await self._completed(item, event)

    async def _partial(self, item: Item, event: TranscriptPartial) -> None:
        if event.sequence <= item.last_sequence:
            return
        item.last_sequence = event.sequence
        stable = event.text[: event.stable_chars]
        if stable.startswith(item.sent) and len(stable) > len(item.sent):
            piece, item.sent = stable[len(item.sent) :], stable
            await self.send(protocol.delta(item.recording_id, piece))

    async def _completed(self, item: Item, event: TranscriptUpdated) -> None:
        transcript = event.transcript
        if transcript.status == "failed":
            await self.send(
                protocol.failed(
                    item.recording_id,
                    transcript.error_code or "transcription_failed",
                    transcript.error_message or "the transcription failed",
                )
            )
            return
        await self.send(
            protocol.completed(item.recording_id, transcript.text, transcript.duration_s or 0.0)
        )
