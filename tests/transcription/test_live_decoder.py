"""The live decoder on real speech fed as it would arrive (100 ms chunks)."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import numpy.typing as npt

from tests.support.speech import Utterance, read_wav, word_error_rate
from whisp_transcription.engines.base import Clip, TranscribeOptions
from whisp_transcription.engines.faster_whisper_engine import FasterWhisperEngine
from whisp_transcription.live_decoder import LiveDecoder, Partial, agreed_prefix

CHUNK = 1_600  # 100 ms at 16 kHz


def stream(decoder: LiveDecoder, audio: npt.NDArray[np.float32]) -> tuple[list[Partial], int]:
    """Feed `audio` chunk by chunk, doing what the worker does between chunks."""
    partials, speculations = [], 0
    for start in range(0, len(audio), CHUNK):
        decoder.append(audio[start : start + CHUNK])
        if decoder.speculation_due():
            decoder.speculate()
            speculations += 1
        elif decoder.partial_due() and (partial := decoder.partial()) is not None:
            partials.append(partial)
    return partials, speculations


def test_agreed_prefix_ignores_case_and_punctuation() -> None:
    assert agreed_prefix(["Remind", "me", "to"], ["remind", "me,", "too"]) == 2
    assert agreed_prefix([], ["a"]) == 0


def test_partials_grow_and_the_final_is_ready_at_release(
    tiny_engine: FasterWhisperEngine, corpus: list[tuple[Utterance, Path]]
) -> None:
    utt, path = corpus[2]  # 14 words, ~4.6 s
    speech, _ = read_wav(path)
    audio = np.concatenate([speech, np.zeros(CHUNK * 4, np.float32)])  # released 0.7 s later
    decoder = LiveDecoder(tiny_engine)
    partials, speculations = stream(decoder, audio)
    assert len(partials) >= 5
    assert partials[0].text  # words before the speech ended
    for before, after in itertools.pairwise(partials):
        assert after.stable.startswith(before.stable)  # stable text never changes
        assert after.text.startswith(after.stable)
        assert after.seq == before.seq + 1
    assert len(partials[-1].stable.split()) >= len(utt.text.split()) // 2
    assert speculations >= 1
    final = decoder.final()
    whole = tiny_engine.transcribe_sync(Clip(audio, b"", "audio/pcm"), TranscribeOptions())
    assert final.text == whole.text  # the speculative final is the real final
    assert word_error_rate(utt.text, final.text) <= 0.2


def test_speech_after_a_pause_is_not_lost_to_the_speculative_final(
    tiny_engine: FasterWhisperEngine, corpus: list[tuple[Utterance, Path]]
) -> None:
    first, _ = read_wav(corpus[0][1])
    second, _ = read_wav(corpus[1][1])
    pause = np.zeros(CHUNK * 8, np.float32)
    decoder = LiveDecoder(tiny_engine)
    _partials, speculations = stream(decoder, np.concatenate([first, pause, second]))
    assert speculations >= 1  # one ran in the pause
    final = decoder.final()
    assert "kitchen" in final.text.lower()
    assert "remind" in final.text.lower()


def test_silence_streams_no_words(tiny_engine: FasterWhisperEngine) -> None:
    decoder = LiveDecoder(tiny_engine)
    partials, speculations = stream(decoder, np.zeros(CHUNK * 30, np.float32))
    assert all(p.text == "" for p in partials)
    assert speculations == 0
    assert decoder.final().is_empty
