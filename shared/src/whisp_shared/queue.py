"""Where a recording waits for a transcription worker, and what its owner is told of it.

The audio service queues a recording with one XADD on its lane's stream and says where in
its answer (`RecordingAccepted.queue`: the lane and the stream entry id). The gateway turns
that into a `QueuePosition` (`queue_position.read_queue`): in its answer to the upload and,
while the recording waits, in `RecordingQueued` live events (`views`) to its owner's pages.
A position holds counts only, never anything of the other recordings that wait.
"""

from __future__ import annotations

from typing import Final

from pydantic import BaseModel, ConfigDict, Field

from whisp_shared.lanes import Lane
from whisp_shared.streams import PRIORITY_RECORDINGS, RECORDINGS

LANE_STREAMS: Final[dict[Lane, str]] = {"priority": PRIORITY_RECORDINGS, "bulk": RECORDINGS}
"""The stream of each lane; the `transcribers` group reads both, priority first (`lanes`)."""

STREAM_ID_PATTERN: Final = r"^[0-9]{1,20}-[0-9]{1,20}$"


class QueueEntry(BaseModel):
    """Where the audio service queued a recording: its lane and the XADD's entry id."""

    model_config = ConfigDict(frozen=True)

    lane: Lane
    entry_id: str = Field(pattern=STREAM_ID_PATTERN)

    @property
    def stream(self) -> str:
        return LANE_STREAMS[self.lane]


class RecordingAccepted(BaseModel):
    """The audio service's answer to an upload (`POST /recordings`): stored and queued.

    The gateway reads it (`clients.AudioService.submit`) and passes only the recording id,
    the duration and the queue position on: `audio_uri` is internal."""

    recording_id: str
    duration_s: float
    audio_uri: str
    content_type: str
    queue: QueueEntry | None = None
    """Where it waits for a worker; None from an audio service that does not say."""


class QueuePosition(BaseModel):
    """A recording's place in the transcription queue, as Redis said it a moment ago.

    `eta_s` is an estimate: the audio seconds waiting ahead (each waiting recording's
    `duration_s`, read from the stream) shared among the active `workers`, plus the
    recording's own audio, times the recent processing rate (the sum of `processing_s` over
    the sum of `audio_duration_s` of the last transcripts, a short list in Redis). It leaves
    out what the workers are busy with right now, so it is low by up to one recording.
    """

    recording_id: str
    lane: Lane
    position: int = Field(ge=1)
    """1 = next: the first entry of its lane a free worker takes (a bulk one also waits for
    every priority one)."""
    ahead: int = Field(ge=0)
    """Entries waiting before it that no worker has taken yet (`position - 1`): of its own
    lane, and for a bulk entry every priority entry waiting too."""
    at_least: bool = False
    """More wait ahead than were counted (the count is capped): `ahead` and `eta_s` are then
    lower bounds ("at least N ahead")."""
    workers: int = Field(ge=0)
    """Transcription workers seen active recently (XINFO CONSUMERS idle time)."""
    eta_s: float | None = Field(default=None, ge=0)
    """About how many seconds until its text (see above); None while no worker is active or
    no recent processing time is known."""
