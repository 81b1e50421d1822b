"""Recordings on disk: the original bytes as received, a 16 kHz mono 16-bit WAV, and a
metadata JSON, in one folder per recording.

    <data_dir>/<id[:2]>/<id>/original.<ext>   (uploads only; what the client sent)
                             audio.wav        (what workers transcribe)
                             meta.json        (owner, type, duration, size, time, keep)

Ids are made here (uuid4 hex) and every id that comes from outside is checked against
a strict pattern *before* any path is built, so no request can name a path outside
`data_dir`. A recording is written into `.incoming/` and renamed into place, so a
reader never sees half of one. Retention deletes by age, then oldest-first by size.

A recording whose owner keeps no audio (`keep_audio: false`) loses its audio files once
transcribed (`discard_audio`); its meta.json stays, marked, so `GET /audio/{id}` can say
the audio was deleted rather than that the recording never existed, and retention or a
purge removes it like any other. `purge` removes one user's recordings, never another's.
"""

from __future__ import annotations

import os
import re
import shutil
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from whisp_shared.logs import get_logger

log = get_logger(__name__)

ID_PATTERN = re.compile(r"[0-9a-f]{32}")
WAV_NAME = "audio.wav"
META_NAME = "meta.json"
INCOMING = ".incoming"
Variant = Literal["wav", "original"]
Source = Literal["upload", "device", "live"]


class InvalidRecordingId(ValueError):
    """Not an id this service could have made; nothing on disk is looked at."""


def new_recording_id() -> str:
    return uuid.uuid4().hex


def check_id(recording_id: str) -> str:
    if not ID_PATTERN.fullmatch(recording_id):
        raise InvalidRecordingId(f"not a recording id: {recording_id[:40]!r}")
    return recording_id


class StoredRecording(BaseModel):
    """meta.json: what we know about a stored recording."""

    recording_id: str = Field(pattern=ID_PATTERN.pattern)
    user_id: str
    content_type: str
    """Type of the original as received (sniffed from its bytes, not declared)."""
    original_name: str | None
    """File name of the original inside the folder; None when the WAV is the original."""
    size: int
    """Bytes of the original as received."""
    wav_size: int
    duration_s: float
    created_at: datetime
    source: Source
    keep_audio: bool = True
    """False: delete the audio once the transcript is ready (the owner's setting)."""
    audio_deleted_at: datetime | None = None
    """When the audio files were deleted (only the metadata is left), if they were."""

    @property
    def disk_bytes(self) -> int:
        if self.audio_deleted_at is not None:
            return 0
        return self.wav_size + (self.size if self.original_name else 0)


@dataclass(frozen=True)
class RetentionReport:
    deleted: int
    freed_bytes: int
    kept: int
    kept_bytes: int


class RecordingStore:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def _folder(self, recording_id: str) -> Path:
        check_id(recording_id)
        folder = (self.root / recording_id[:2] / recording_id).resolve()
        if not folder.is_relative_to(self.root):  # unreachable with the pattern; kept as a guard
            raise InvalidRecordingId(recording_id)
        return folder

    def save(
        self,
        recording_id: str,
        *,
        user_id: str,
        wav: bytes,
        duration_s: float,
        source: Source,
        original: bytes | None = None,
        content_type: str = "audio/wav",
        extension: str = "bin",
        keep_audio: bool = True,
    ) -> StoredRecording:
        """Write a new recording atomically; `original=None` means the WAV is the original."""
        final = self._folder(recording_id)
        if not re.fullmatch(r"[a-z0-9]{1,5}", extension):
            raise ValueError(f"bad extension {extension!r}")
        original_name = f"original.{extension}" if original is not None else None
        meta = StoredRecording(
            recording_id=recording_id,
            user_id=user_id,
            content_type=content_type,
            original_name=original_name,
            size=len(original) if original is not None else len(wav),
            wav_size=len(wav),
            duration_s=round(duration_s, 3),
            created_at=datetime.now(UTC),
            source=source,
            keep_audio=keep_audio,
        )
        staging = self.root / INCOMING / recording_id
        staging.mkdir(parents=True)
        try:
            (staging / WAV_NAME).write_bytes(wav)
            if original is not None and original_name is not None:
                (staging / original_name).write_bytes(original)
            (staging / META_NAME).write_text(meta.model_dump_json(indent=1))
            final.parent.mkdir(parents=True, exist_ok=True)
            staging.rename(final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return meta

    def get(self, recording_id: str) -> StoredRecording | None:
        """The recording's metadata, or None when the id is malformed or unknown."""
        try:
            folder = self._folder(recording_id)
            return StoredRecording.model_validate_json((folder / META_NAME).read_bytes())
        except (InvalidRecordingId, FileNotFoundError, NotADirectoryError):
            return None

    def path(self, meta: StoredRecording, variant: Variant = "wav") -> Path:
        folder = self._folder(meta.recording_id)
        if variant == "original" and meta.original_name:
            return folder / meta.original_name
        return folder / WAV_NAME

    def discard_audio(self, recording_id: str) -> StoredRecording | None:
        """Delete the recording's audio files and mark its metadata so (idempotent: files
        already gone are fine). The mark is written first, so a reader that finds the mark
        never goes looking for a file. None: no such recording."""
        meta = self.get(recording_id)
        if meta is None:
            return None
        folder = self._folder(recording_id)
        try:
            if meta.audio_deleted_at is None:
                meta = meta.model_copy(update={"audio_deleted_at": datetime.now(UTC)})
                fresh = folder / f".{META_NAME}.{os.getpid()}"
                fresh.write_text(meta.model_dump_json(indent=1))
                fresh.replace(folder / META_NAME)
            for entry in folder.iterdir():
                if entry.name != META_NAME:
                    entry.unlink(missing_ok=True)
        except FileNotFoundError:  # deleted whole meanwhile (a purge, retention)
            return None
        return meta

    def purge(self, user_id: str, before: datetime | None = None) -> tuple[int, int]:
        """Remove `user_id`'s recordings made before `before` (all of them without it):
        (recordings removed, audio bytes freed)."""
        deleted = freed = 0
        for record in self.all():
            if record.user_id != user_id or (before is not None and record.created_at >= before):
                continue
            if self.delete(record.recording_id):
                deleted += 1
                freed += record.disk_bytes
        if deleted:
            log.info("purged a user's recordings", user_id=user_id, deleted=deleted,
                     freed_bytes=freed)  # fmt: skip
        return deleted, freed

    def delete(self, recording_id: str) -> bool:
        try:
            folder = self._folder(recording_id)
        except InvalidRecordingId:
            return False
        if not folder.is_dir():
            return False
        # Rename first so a concurrent reader sees either all of it or nothing.
        doomed = self.root / INCOMING / f"deleting-{recording_id}-{os.getpid()}"
        doomed.parent.mkdir(parents=True, exist_ok=True)
        try:
            folder.rename(doomed)
        except FileNotFoundError:
            return False
        shutil.rmtree(doomed, ignore_errors=True)
        return True

    def all(self) -> list[StoredRecording]:
        """Every stored recording (unreadable metadata is logged and skipped)."""
        found = []
        for meta_path in self.root.glob(f"??/*/{META_NAME}"):
            try:
                found.append(StoredRecording.model_validate_json(meta_path.read_bytes()))
            except (OSError, ValueError) as exc:
                log.warning("unreadable recording metadata", path=str(meta_path), error=str(exc))
        return found

    def enforce_retention(
        self,
        max_age_s: float | None,
        max_bytes: int | None,
        now: datetime | None = None,
        stale_incoming_s: float = 3600.0,
    ) -> RetentionReport:
        """Delete recordings older than `max_age_s`, then the oldest until the rest fit in
        `max_bytes`; also sweeps staging folders left by a crash."""
        now = now or datetime.now(UTC)
        self._sweep_incoming(stale_incoming_s)
        records = sorted(self.all(), key=lambda r: r.created_at)
        deleted = freed = 0
        keep: list[StoredRecording] = []
        for record in records:
            age_s = (now - record.created_at).total_seconds()
            if max_age_s is None or age_s <= max_age_s:
                keep.append(record)
            elif self.delete(record.recording_id):
                deleted += 1
                freed += record.disk_bytes
        total = sum(r.disk_bytes for r in keep)
        while max_bytes is not None and keep and total > max_bytes:
            oldest = keep.pop(0)
            if self.delete(oldest.recording_id):
                deleted += 1
                freed += oldest.disk_bytes
            total -= oldest.disk_bytes
        if deleted:
            log.info("retention deleted recordings", deleted=deleted, freed_bytes=freed)
        return RetentionReport(deleted, freed, len(keep), total)

    def _sweep_incoming(self, older_than_s: float) -> None:
        incoming = self.root / INCOMING
        if not incoming.is_dir():
            return
        cutoff = time.time() - older_than_s
        for entry in incoming.iterdir():
            try:
                if entry.stat().st_mtime < cutoff:
                    shutil.rmtree(entry, ignore_errors=True)
            except FileNotFoundError:
                continue
