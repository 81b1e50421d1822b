"""The speech in a clip (Silero VAD, as `transcribe()` finds it) and the way back to clip time.

The short window decodes only the speech, pauses removed, so a 10-s clip with 4 s of
silence costs a 6-s pass; segment and word times come back in that shortened timeline
and `restore` maps them onto the original clip.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from whisp_shared.events import Segment, Word
from whisp_transcription.engines.base import SAMPLE_RATE

Chunk = dict[str, int]
"""`{"start": sample, "end": sample}`, as faster-whisper's VAD returns them."""


@dataclass(frozen=True)
class Speech:
    samples: npt.NDArray[np.float32]
    chunks: list[Chunk]

    @classmethod
    def find(cls, audio: npt.NDArray[np.float32], vad: bool) -> Speech:
        """Every speech chunk of `audio` joined (the whole clip when `vad` is off)."""
        if not vad:
            chunks = [{"start": 0, "end": len(audio)}] if len(audio) else []
            return cls(audio, chunks)
        from faster_whisper.vad import VadOptions, get_speech_timestamps  # noqa: PLC0415

        chunks = get_speech_timestamps(audio, VadOptions())
        if not chunks:
            return cls(np.zeros(0, dtype=np.float32), [])
        joined = np.concatenate([audio[c["start"] : c["end"]] for c in chunks])
        return cls(joined.astype(np.float32, copy=False), chunks)

    @property
    def duration_s(self) -> float:
        return len(self.samples) / SAMPLE_RATE

    def restore(self, segment: Segment) -> Segment:
        """`segment` with its times moved from the joined speech back onto the clip."""
        words = [self._restore_word(w) for w in segment.words] if segment.words else None
        if words:
            return segment.model_copy(
                update={"start": words[0].start, "end": words[-1].end, "words": words}
            )
        return segment.model_copy(
            update={
                "start": self.original_time(segment.start),
                "end": self.original_time(segment.end, is_end=True),
                "words": words,
            }
        )

    def _restore_word(self, word: Word) -> Word:
        chunk = self._chunk_index((word.start + word.end) / 2)
        return word.model_copy(
            update={
                "start": self.original_time(word.start, chunk),
                "end": self.original_time(word.end, chunk),
            }
        )

    def original_time(self, time: float, chunk: int | None = None, is_end: bool = False) -> float:
        """Seconds in the joined speech → seconds in the clip: add the silence cut before
        the chunk the time falls in (an end on a chunk boundary stays in its chunk)."""
        index = self._chunk_index(time, is_end) if chunk is None else chunk
        return round(time + self._silence_before()[index] / SAMPLE_RATE, 3)

    def _chunk_index(self, time: float, is_end: bool = False) -> int:
        sample = int(time * SAMPLE_RATE)
        for index, end in enumerate(self._joined_ends()):
            if sample < end or (is_end and sample == end):
                return index
        return len(self.chunks) - 1

    def _joined_ends(self) -> list[int]:
        ends, total = [], 0
        for chunk in self.chunks:
            total += chunk["end"] - chunk["start"]
            ends.append(total)
        return ends

    def _silence_before(self) -> list[int]:
        cut, previous_end, result = 0, 0, []
        for chunk in self.chunks:
            cut += chunk["start"] - previous_end
            previous_end = chunk["end"]
            result.append(cut)
        return result
