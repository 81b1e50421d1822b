"""Text while the key is held, the final the moment it is let go.

Audio of one live recording arrives in chunks. Every `partial_every_s` of new audio a
cheap short-window pass (no timestamps, no fallback) looks at everything so far; its words
are shown as a *partial*. What two passes in a row agree on becomes *stable* and never
changes again on screen (local agreement: text only grows), the rest is the tentative tail.

The final at release should cost nothing: as soon as the speech is followed by a short
silence, a *speculative final* — the full engine call, guards and fallback included — runs
on what has arrived. At commit, if only silence came after it, that result is the final;
otherwise the final is decoded then, over the whole recording.

Every pass takes the recording's vocabulary (its `options`, as the batch path does).
Partials stay as heard; the owner's replacements apply to the final only
(`consumer.transcript_ready`): "new" settled on screen must not turn into a line break
when "paragraph" follows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from whisp_shared.audio import rms_dbfs
from whisp_transcription.engines.base import SAMPLE_RATE, Clip, TranscribeOptions, Transcription
from whisp_transcription.engines.faster_whisper_engine import FasterWhisperEngine

QUIET_TAIL_S = 0.2
"""This much quiet after speech starts a speculative final: people let go of the key
0.3-0.7 s after their last word, and the final should be done by then."""
TAIL_DBFS_MARGIN = 25.0
"""The tail counts as quiet when it is this much below the loudest 100 ms so far (or under
the engine's floor): a relative test, so room tone and mic gain do not matter."""


@dataclass(frozen=True)
class Partial:
    text: str
    """Everything heard so far: the stable words, then the tentative ones."""
    stable: str
    """The prefix of `text` that will not change any more (it only ever grows)."""
    seq: int


def _words(text: str) -> list[str]:
    return text.split()


def agreed_prefix(a: list[str], b: list[str]) -> int:
    """How many leading words two hypotheses share (case and punctuation ignored)."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x.strip(".,!?;:").lower() != y.strip(".,!?;:").lower():
            break
        n += 1
    return n


@dataclass
class LiveDecoder:
    """One live recording's audio and what has been decoded from it. Blocking methods:
    call them on the model thread."""

    engine: FasterWhisperEngine
    options: TranscribeOptions = field(default_factory=TranscribeOptions)
    partial_every_s: float = 0.5
    _chunks: list[npt.NDArray[np.float32]] = field(default_factory=list)
    _samples: int = 0
    _last_pass_at: int = 0
    _previous: list[str] = field(default_factory=list)
    _stable: list[str] = field(default_factory=list)
    _seq: int = 0
    _loudest_dbfs: float = -120.0
    _speculative: tuple[int, Transcription] | None = None
    _speech_until: int = 0
    """Samples up to the end of the last chunk that was not quiet."""

    @property
    def duration_s(self) -> float:
        return self._samples / SAMPLE_RATE

    def append(self, samples: npt.NDArray[np.float32]) -> None:
        """Add 16 kHz mono float32 audio as it arrives."""
        if not len(samples):
            return
        self._chunks.append(samples)
        self._samples += len(samples)
        for start in range(0, len(samples), SAMPLE_RATE // 10):
            level = rms_dbfs(samples[start : start + SAMPLE_RATE // 10])
            self._loudest_dbfs = max(self._loudest_dbfs, level)
            if not self._is_quiet(level):
                self._speech_until = self._samples - len(samples) + start + SAMPLE_RATE // 10

    def audio(self) -> npt.NDArray[np.float32]:
        if len(self._chunks) > 1:
            self._chunks = [np.concatenate(self._chunks)]
        return self._chunks[0] if self._chunks else np.zeros(0, np.float32)

    def resume(self, stable: str) -> None:
        """Carry on from what an earlier decoder of this recording (a worker that died, whose
        audio this one replays) showed as settled: those words stay settled here too, so
        the user's screen never takes back a word across the handover."""
        self._stable = _words(stable)
        self._previous = list(self._stable)

    def partial_due(self) -> bool:
        """Enough new audio, and some of it speech: a partial over a quiet tail would only
        hold the model when the speculative final (or the commit) needs it."""
        new_s = (self._samples - self._last_pass_at) / SAMPLE_RATE
        return new_s >= self.partial_every_s and self._speech_until > self._last_pass_at

    def partial(self) -> Partial | None:
        """A new partial when the words changed (None: nothing new to show)."""
        self._last_pass_at = self._samples
        heard = self.engine.peek_sync(self.audio(), self.options)
        if heard is None:
            return None
        words = _words(heard)
        # Past the settled words, what this pass and the last agree on settles too. Words
        # are matched by position: a pass that re-hears a settled word differently ("Send"
        # / "And") must not stop the rest from settling.
        done = len(self._stable)
        agreed = agreed_prefix(self._previous[done:], words[done:])
        self._previous = words
        self._stable = [*self._stable, *words[done : done + agreed]]
        text = " ".join([*self._stable, *words[len(self._stable) :]])
        self._seq += 1
        return Partial(text=text, stable=" ".join(self._stable), seq=self._seq)

    def speculation_due(self) -> bool:
        """Speech has been followed by a quiet tail and nothing speculative covers it yet."""
        quiet_for = (self._samples - self._speech_until) / SAMPLE_RATE
        covered = self._speculative is not None and self._speculative[0] >= self._speech_until
        return self._speech_until > 0 and quiet_for >= QUIET_TAIL_S and not covered

    def speculate(self) -> None:
        """Decode the final now, during the pause; `final` reuses it if no speech follows."""
        self._speculative = (self._samples, self._final_of(self.audio()))

    def final(self) -> Transcription:
        """The transcript of the whole recording (at commit)."""
        if self._speculative is not None and self._speculative[0] >= self._speech_until:
            return self._speculative[1]
        return self._final_of(self.audio())

    def _final_of(self, audio: npt.NDArray[np.float32]) -> Transcription:
        return self.engine.transcribe_sync(Clip(audio, b"", "audio/pcm"), self.options)

    def _is_quiet(self, level: float) -> bool:
        return (
            level < self.engine.settings.min_rms_dbfs
            or level < self._loudest_dbfs - TAIL_DBFS_MARGIN
        )
