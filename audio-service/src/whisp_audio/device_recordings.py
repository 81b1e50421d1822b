"""Device recordings: one Recorder per (user, device), started and stopped on request,
watched over an event stream, and never left running unattended.

- A stop stores and publishes through `Ingest`, exactly like an upload.
- A recording that reaches its maximum duration stops itself; it is stored and published
  at once, and a late `stop` from the client answers with that recording.
- A client that goes away (its event stream closed and no status poll for
  `disconnect_grace_s`) has its recording cancelled and the device released.
- Shutdown releases every device.

This is the domain: it speaks in recorder states and `Accepted` recordings and refuses
with the service's `WhispError`s; the HTTP shapes live in `whisp_audio.api`.
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

from whisp_audio import metrics
from whisp_audio.errors import (
    AlreadyRecording,
    DeviceUnavailable,
    EmptyRecording,
    NotRecording,
    UnknownDevice,
)
from whisp_audio.ingest import Accepted, Ingest
from whisp_audio.settings import AudioSettings
from whisp_recorder import (
    FLOOR_DBFS,
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
from whisp_recorder.machine import ACTIVE_STATES
from whisp_shared.errors import WhispError
from whisp_shared.logs import get_logger
from whisp_shared.options import RecordingOptions

log = get_logger(__name__)

DeviceRef = str | int | None
SourceFactory = Callable[[DeviceRef], AudioSource]
StoppedBy = Literal["stop", "max_duration"]
QUEUE_SIZE = 256
IDLE_SESSION_TTL_S = 600.0
"""An idle session nobody has looked at for this long is forgotten (bounded memory)."""


@dataclass(frozen=True)
class DeviceSnapshot:
    """One (user, device) as its client sees it: the recorder's status and what the
    service remembers beside it."""

    device: str
    status: RecorderStatus
    max_duration_s: float | None
    error: str | None = None
    last_recording_id: str | None = None


@dataclass(frozen=True)
class DeviceResult:
    """A device recording stored and published, and what ended it."""

    accepted: Accepted
    stopped_by: StoppedBy


@dataclass
class DeviceSession:
    """What the service keeps beside a recorder: the caller's options and liveness."""

    key: RecorderKey
    recorder: Recorder
    options: RecordingOptions = field(default_factory=RecordingOptions)
    last_seen: float = field(default_factory=time.monotonic)
    listeners: int = 0
    last_result: DeviceResult | None = None
    last_error: str | None = None
    completing: asyncio.Task[None] | None = None
    """Storing and publishing a recording that stopped itself."""
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    """Set on the event loop whenever the recorder reports a state change (its threads
    move it first; the loop hears about it a moment later)."""

    def touch(self) -> None:
        self.last_seen = time.monotonic()

    def snapshot(self, status: RecorderStatus) -> DeviceSnapshot:
        return DeviceSnapshot(
            device=self.key[1],
            status=status,
            max_duration_s=self.recorder.max_duration_s,
            error=status.error or (self.last_error if status.state is RecorderState.IDLE else None),
            last_recording_id=self.last_result.accepted.recording_id if self.last_result else None,
        )

    async def settled(self) -> None:
        """Wait until the loop has caught up with the recorder: a recording that stopped
        itself (or another request's stop) is PROCESSING before its news arrives here."""
        while self.recorder.state is RecorderState.PROCESSING and self.completing is None:
            self.changed.clear()
            await self.changed.wait()


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

    # -------------------------------------------------------------- sessions

    def _session(self, user_id: str, device: str) -> DeviceSession:
        """The session of (user, device), created on first use; called on the event loop,
        which then hears every state change of its recorder."""
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
            loop = asyncio.get_running_loop()

            def from_recorder_thread(status: RecorderStatus) -> None:
                """Recorder threads -> the loop (never block them, never call back in)."""
                if status.reason == "level":
                    return
                with suppress(RuntimeError):  # the loop is closing: shutdown releases it
                    loop.call_soon_threadsafe(self._on_recorder_event, session, status)

            recorder.subscribe(from_recorder_thread)
        return session

    def _peek(self, user_id: str, device: str) -> DeviceSession | None:
        """The session if one exists: asking about a device must not create state."""
        return self._sessions.get((user_id, device))

    def _on_recorder_event(self, session: DeviceSession, status: RecorderStatus) -> None:
        if status.reason == "error":
            session.last_error = status.error
        elif status.reason == "max_duration" and session.completing is None:
            session.completing = asyncio.create_task(self._complete_auto_stop(session))
        session.changed.set()

    async def _complete_auto_stop(self, session: DeviceSession) -> None:
        recording = session.recorder.result
        try:
            if recording is not None:
                session.last_result = await self._publish(
                    session, recording.samples, "max_duration"
                )
        except WhispError as exc:
            session.last_error = exc.message
        finally:
            await asyncio.to_thread(session.recorder.finish)

    async def _publish(
        self, session: DeviceSession, samples: npt.NDArray[np.float32], stopped_by: StoppedBy
    ) -> DeviceResult:
        if samples.size == 0:
            raise EmptyRecording("nothing was recorded (the device delivered no audio)")
        accepted = await self.ingest.submit(
            user_id=session.key[0], samples=samples, options=session.options, source="device"
        )
        return DeviceResult(accepted, stopped_by)

    # -------------------------------------------------------------- actions

    async def start(
        self,
        user_id: str,
        device: str,
        options: RecordingOptions,
        max_duration_s: float | None = None,
    ) -> DeviceSnapshot:
        """Arm and start at once; stops by itself after `max_duration_s` (at most the
        service's own limit)."""
        session = self._session(user_id, device)
        recorder = session.recorder
        if recorder.state is not RecorderState.IDLE:
            raise AlreadyRecording(
                f"the recording on {device!r} is {recorder.state}; stop or cancel it first"
            )
        limit = self.settings.max_duration_s
        recorder.max_duration_s = min(max_duration_s or limit, limit)
        session.options = options
        session.last_result = session.last_error = None
        session.completing = None
        session.touch()
        try:
            await asyncio.to_thread(recorder.arm)
        except SourceError as exc:
            session.last_error = str(exc)
            if isinstance(exc, DeviceNotFound):
                raise UnknownDevice(str(exc)) from exc
            raise DeviceUnavailable(str(exc)) from exc
        await asyncio.to_thread(recorder.start)
        return session.snapshot(recorder.status("start"))

    async def stop(self, user_id: str, device: str) -> DeviceResult:
        """Stop, store and publish; a recording that already stopped itself answers with
        what it published."""
        session = self._peek(user_id, device)
        if session is None:
            raise NotRecording(f"there is no recording on {device!r} to stop")
        session.touch()
        await session.settled()
        if session.completing is None and session.recorder.state is RecorderState.RECORDING:
            try:
                return await self._stop_and_publish(session)
            except InvalidTransition:
                await session.settled()  # it stopped itself (or was cancelled) meanwhile
        if session.completing is not None:
            await asyncio.shield(session.completing)
            if session.last_result is not None:
                return session.last_result
            raise NotRecording(session.last_error or "the recording had already ended")
        why = f" ({session.last_error})" if session.last_error else ""
        raise NotRecording(f"there is no recording on {device!r} to stop{why}")

    async def _stop_and_publish(self, session: DeviceSession) -> DeviceResult:
        recorder = session.recorder
        recording = await asyncio.to_thread(recorder.stop)
        try:
            session.last_result = result = await self._publish(session, recording.samples, "stop")
        finally:
            # Stored and published, or failed: either way the device is free for the next.
            await asyncio.to_thread(recorder.finish)
        return result

    async def cancel(self, user_id: str, device: str, reason: str = "client") -> DeviceSnapshot:
        session = self._peek(user_id, device)
        if session is None or session.recorder.state not in ACTIVE_STATES:
            raise NotRecording(f"there is no recording on {device!r} to cancel")
        session.touch()
        recorder = session.recorder
        await asyncio.to_thread(recorder.cancel)
        metrics.DEVICE_CANCELLED.labels(reason).inc()
        return session.snapshot(recorder.status("cancel"))

    def status(self, user_id: str, device: str) -> DeviceSnapshot:
        session = self._peek(user_id, device)
        if session is None:
            idle = RecorderStatus(RecorderState.IDLE, 0.0, FLOOR_DBFS, "level")
            return DeviceSnapshot(device, idle, self.settings.max_duration_s)
        session.touch()
        return session.snapshot(session.recorder.status("level"))

    async def events(self, user_id: str, device: str) -> AsyncIterator[DeviceSnapshot]:
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
            yield session.snapshot(session.recorder.status("level"))
            while True:
                status = await queue.get()
                session.touch()
                yield session.snapshot(status)
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
