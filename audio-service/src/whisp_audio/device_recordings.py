"""Device recordings driven over HTTP: one Recorder per (user, device), started and
stopped by requests, watched over an event stream, and never left running unattended.

- A stop stores and publishes through `Ingest`, exactly like an upload.
- A recording that reaches `max_duration_s` stops itself; it is stored and published
  at once, and a late `stop` from the client answers with that recording.
- A client that goes away (its event stream closed and no status poll for
  `disconnect_grace_s`) has its recording cancelled and the device released.
- Shutdown releases every device.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, Field

from whisp_audio import metrics
from whisp_audio.errors import ApiError
from whisp_audio.ingest import Accepted, Ingest, RecordingOptions
from whisp_audio.recorder import (
    AudioSource,
    DeviceNotFound,
    InvalidTransition,
    Recorder,
    RecorderKey,
    RecorderRegistry,
    RecorderState,
    RecorderStatus,
    SourceError,
)
from whisp_audio.recorder.level import FLOOR_DBFS
from whisp_audio.recorder.machine import ACTIVE_STATES
from whisp_audio.settings import AudioSettings
from whisp_shared.logs import get_logger

log = get_logger(__name__)

DeviceRef = str | int | None
SourceFactory = Callable[[DeviceRef], AudioSource]
QUEUE_SIZE = 256
IDLE_SESSION_TTL_S = 600.0
"""An idle session nobody has looked at for this long is forgotten (bounded memory)."""


class StartRecording(RecordingOptions):
    """Body of `POST /devices/{device}/recording` (all optional)."""

    max_duration_s: float | None = Field(default=None, gt=0)
    """Stop by itself after this long (at most the service's own limit)."""


class DeviceStatus(BaseModel):
    device: str
    state: RecorderState
    elapsed_s: float
    level_dbfs: float
    reason: str
    max_duration_s: float | None
    error: str | None = None
    last_recording_id: str | None = None


class StopResult(BaseModel):
    recording_id: str
    duration_s: float
    audio_uri: str
    content_type: str
    stopped_by: Literal["stop", "max_duration"]


@dataclass
class DeviceSession:
    """What the service keeps beside a recorder: the caller's options and liveness."""

    key: RecorderKey
    recorder: Recorder
    options: RecordingOptions = field(default_factory=RecordingOptions)
    last_seen: float = field(default_factory=time.monotonic)
    listeners: int = 0
    last_result: StopResult | None = None
    last_error: str | None = None
    completing: asyncio.Task[None] | None = None

    def touch(self) -> None:
        self.last_seen = time.monotonic()

    def describe(self, status: RecorderStatus) -> DeviceStatus:
        return DeviceStatus(
            device=self.key[1],
            state=status.state,
            elapsed_s=status.elapsed_s,
            level_dbfs=status.level_dbfs,
            reason=status.reason,
            max_duration_s=self.recorder.max_duration_s,
            error=status.error or (self.last_error if status.state is RecorderState.IDLE else None),
            last_recording_id=self.last_result.recording_id if self.last_result else None,
        )


def resolve_device(name: str, default: DeviceRef) -> DeviceRef:
    """URL segment to a sounddevice device: `default`, an index, or a name."""
    if name == "default":
        return default
    return int(name) if name.isdigit() else name


class DeviceRecordings:
    def __init__(
        self,
        registry: RecorderRegistry,
        ingest: Ingest,
        settings: AudioSettings,
        source_factory: SourceFactory,
    ) -> None:
        self.registry = registry
        self.ingest = ingest
        self.settings = settings
        self.source_factory = source_factory
        self._sessions: dict[RecorderKey, DeviceSession] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    # -------------------------------------------------------------- sessions

    def _session(self, user_id: str, device: str) -> DeviceSession:
        key = (user_id, device)
        session = self._sessions.get(key)
        if session is None:
            recorder = self.registry.get_or_create(
                key,
                lambda: Recorder(
                    self.source_factory(resolve_device(device, self.settings.default_device)),
                    max_duration_s=self.settings.max_duration_s,
                ),
            )
            session = self._sessions[key] = DeviceSession(key, recorder)
            recorder.subscribe(lambda status: self._from_recorder_thread(session, status))
        return session

    def _peek(self, user_id: str, device: str) -> DeviceSession | None:
        """The session if one exists: asking about a device must not create state."""
        return self._sessions.get((user_id, device))

    def _from_recorder_thread(self, session: DeviceSession, status: RecorderStatus) -> None:
        """Recorder threads -> the event loop (never block them, never call back in)."""
        if status.reason not in ("max_duration", "error") or self._loop is None:
            return
        with suppress(RuntimeError):  # the loop is closing: shutdown releases the device
            self._loop.call_soon_threadsafe(self._on_recorder_event, session, status)

    def _on_recorder_event(self, session: DeviceSession, status: RecorderStatus) -> None:
        if status.reason == "error":
            session.last_error = status.error
        elif status.reason == "max_duration" and session.completing is None:
            session.completing = asyncio.create_task(self._complete_auto_stop(session))

    async def _complete_auto_stop(self, session: DeviceSession) -> None:
        recording = session.recorder.result
        try:
            if recording is not None:
                session.last_result = await self._publish(
                    session, recording.samples, "max_duration"
                )
        except ApiError as exc:
            session.last_error = exc.message
        finally:
            await asyncio.to_thread(session.recorder.finish)

    async def _publish(
        self,
        session: DeviceSession,
        samples: npt.NDArray[np.float32],
        stopped_by: Literal["stop", "max_duration"],
    ) -> StopResult:
        if samples.size == 0:
            raise ApiError(
                422, "empty_recording", "nothing was recorded (the device delivered no audio)"
            )
        accepted: Accepted = await self.ingest.submit(
            user_id=session.key[0], samples=samples, options=session.options, source="device"
        )
        return StopResult(
            recording_id=accepted.recording_id,
            duration_s=accepted.duration_s,
            audio_uri=accepted.audio_uri,
            content_type=accepted.content_type,
            stopped_by=stopped_by,
        )

    # -------------------------------------------------------------- actions

    async def start(self, user_id: str, device: str, request: StartRecording) -> DeviceStatus:
        session = self._session(user_id, device)
        recorder = session.recorder
        if recorder.state is not RecorderState.IDLE:
            raise ApiError(
                409,
                "already_recording",
                f"the recording on {device!r} is {recorder.state}; stop or cancel it first",
            )
        limit = self.settings.max_duration_s
        recorder.max_duration_s = min(request.max_duration_s or limit, limit)
        session.options = RecordingOptions(
            **request.model_dump(exclude={"max_duration_s"}),
        )
        session.last_result = session.last_error = None
        session.completing = None
        session.touch()
        try:
            await asyncio.to_thread(recorder.arm)
        except SourceError as exc:
            session.last_error = str(exc)
            if isinstance(exc, DeviceNotFound):
                raise ApiError(404, "unknown_device", str(exc)) from exc
            raise ApiError(503, "device_unavailable", str(exc)) from exc
        await asyncio.to_thread(recorder.start)
        return session.describe(recorder.status("start"))

    async def stop(self, user_id: str, device: str) -> StopResult:
        session = self._peek(user_id, device)
        if session is None:
            raise ApiError(409, "not_recording", f"there is no recording on {device!r} to stop")
        session.touch()
        recorder = session.recorder
        for _ in range(100):  # an automatic stop in flight reaches the loop within ms
            if recorder.state is not RecorderState.PROCESSING or session.completing:
                break
            await asyncio.sleep(0.01)
        if session.completing is not None:
            await asyncio.shield(session.completing)
            if session.last_result is not None:
                return session.last_result
            raise ApiError(
                409, "not_recording", session.last_error or "the recording had already ended"
            )
        if recorder.state is not RecorderState.RECORDING:
            why = f" ({session.last_error})" if session.last_error else ""
            raise ApiError(
                409, "not_recording", f"there is no recording on {device!r} to stop{why}"
            )
        try:
            recording = await asyncio.to_thread(recorder.stop)
            session.last_result = await self._publish(session, recording.samples, "stop")
        finally:
            # Stored and published, or failed: either way the device is free for the next.
            if recorder.state in (RecorderState.PROCESSING,):  # re-read: stop moved it
                await asyncio.to_thread(recorder.finish)
        return session.last_result

    async def cancel(self, user_id: str, device: str, reason: str = "client") -> DeviceStatus:
        session = self._peek(user_id, device)
        if session is None or session.recorder.state not in ACTIVE_STATES:
            raise ApiError(409, "not_recording", f"there is no recording on {device!r} to cancel")
        session.touch()
        recorder = session.recorder
        await asyncio.to_thread(recorder.cancel)
        metrics.DEVICE_CANCELLED.labels(reason).inc()
        return session.describe(recorder.status("cancel"))

    def status(self, user_id: str, device: str) -> DeviceStatus:
        session = self._peek(user_id, device)
        if session is None:
            return DeviceStatus(
                device=device,
                state=RecorderState.IDLE,
                elapsed_s=0.0,
                level_dbfs=FLOOR_DBFS,
                reason="level",
                max_duration_s=self.settings.max_duration_s,
            )
        session.touch()
        return session.describe(session.recorder.status("level"))

    async def events(self, user_id: str, device: str) -> AsyncIterator[DeviceStatus]:
        """Every change of this recorder, starting with its current status; the stream's
        presence alone keeps the recording alive."""
        session = self._session(user_id, device)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[RecorderStatus] = asyncio.Queue(QUEUE_SIZE)

        def put(status: RecorderStatus) -> None:
            if queue.full():  # a slow reader loses old level ticks, never a state change
                with suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait(status)

        def from_thread(status: RecorderStatus) -> None:
            with suppress(RuntimeError):
                loop.call_soon_threadsafe(put, status)

        unsubscribe = session.recorder.subscribe(from_thread)
        session.listeners += 1
        try:
            yield session.describe(session.recorder.status("level"))
            while True:
                status = await queue.get()
                session.touch()
                yield session.describe(status)
        finally:
            session.listeners -= 1
            session.touch()
            unsubscribe()

    # -------------------------------------------------------------- upkeep

    def abandoned(self, now: float | None = None) -> list[DeviceSession]:
        """Sessions holding a device with no listener and no poll for the grace period."""
        now = time.monotonic() if now is None else now
        grace = self.settings.disconnect_grace_s
        return [
            s
            for s in self._sessions.values()
            if s.recorder.state in ACTIVE_STATES and s.listeners == 0 and now - s.last_seen > grace
        ]

    def forget_idle(self, now: float | None = None, ttl_s: float = IDLE_SESSION_TTL_S) -> int:
        """Drop idle sessions nobody watches or asked about for `ttl_s`."""
        now = time.monotonic() if now is None else now
        stale = [
            key
            for key, s in self._sessions.items()
            if s.recorder.state is RecorderState.IDLE
            and s.listeners == 0
            and (s.completing is None or s.completing.done())
            and now - s.last_seen > ttl_s
        ]
        for key in stale:
            del self._sessions[key]
            self.registry.discard(key)
        return len(stale)

    async def watchdog(self) -> None:
        interval = min(1.0, max(0.05, self.settings.disconnect_grace_s / 4))
        while True:
            await asyncio.sleep(interval)
            self.forget_idle()
            for session in self.abandoned():
                log.warning(
                    "client went away; cancelling its recording",
                    user_id=session.key[0],
                    device=session.key[1],
                )
                try:
                    await asyncio.to_thread(session.recorder.cancel)
                except InvalidTransition:
                    continue  # it stopped or was cancelled meanwhile
                metrics.DEVICE_CANCELLED.labels("disconnect").inc()
                session.last_error = (
                    "cancelled: the client went away (no status poll or event stream for "
                    f"{self.settings.disconnect_grace_s:g} s)"
                )

    async def shutdown(self) -> None:
        holding = self.registry.holding_device()
        await asyncio.to_thread(self.registry.close_all)
        if holding:
            metrics.DEVICE_CANCELLED.labels("shutdown").inc(holding)
        self._sessions.clear()
