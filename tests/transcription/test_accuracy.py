"""tiny.en on speech made in this run: word error rate, formats, and silence staying silent.

Thresholds, measured here on this 12-clip espeak-ng corpus (deterministic: undithered
synthesis, int8 CPU inference): tiny.en, beam 1 scores 13.5 % corpus WER, median clip
~10 %, worst clip 48 % (a breathy `en-gb-x-rp+f3` voice at 130 wpm); beam 5 gives 11.2 %,
Whisper base 7.8 %. The default voice alone scores 0-5 %. Asserted: corpus ≤ 20 % (the
issue's "well under 25 %"), median clip ≤ 15 %, no clip above 60 % — a wrong model, bad
resampling or a filter that eats speech breaks these at once, voice jitter does not.
"""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest

from tests.support.formats import CONTENT_TYPES, encode
from tests.support.speech import (
    Utterance,
    click,
    corpus_wer,
    silence,
    white_noise,
    word_error_rate,
)
from whisp_shared.audio import decode_audio
from whisp_transcription.engines.base import Clip, TranscribeOptions, Transcription
from whisp_transcription.engines.faster_whisper_engine import FasterWhisperEngine

CORPUS_WER_MAX = 0.20
MEDIAN_CLIP_WER_MAX = 0.15
CLIP_WER_MAX = 0.60
FORMAT_WER_MAX = 0.25
FORMATS = ["wav44k_stereo", "flac", "mp3", "ogg_opus", "webm_opus"]


async def transcribe_file(
    engine: FasterWhisperEngine, path: Path, content_type: str = "audio/wav", **options: object
) -> Transcription:
    raw = path.read_bytes()
    return await engine.transcribe(
        Clip(decode_audio(raw), raw, content_type),
        TranscribeOptions(**options),  # type: ignore[arg-type]
    )


async def test_corpus_word_error_rate(
    tiny_engine: FasterWhisperEngine, corpus: list[tuple[Utterance, Path]]
) -> None:
    assert len(corpus) >= 8
    pairs, clip_wers = [], []
    for utt, path in corpus:
        result = await transcribe_file(tiny_engine, path)
        assert not result.is_empty, utt.id
        assert result.language == "en"
        clip_wer = word_error_rate(utt.text, result.text)
        print(f"{utt.id:>24} {utt.voice:>10} {utt.speed_wpm:>4} wpm  WER {clip_wer:.3f}")
        assert clip_wer <= CLIP_WER_MAX, (utt.text, result.text)
        pairs.append((utt.text, result.text))
        clip_wers.append(clip_wer)
    total = corpus_wer(pairs)
    print(f"corpus WER {total:.4f}, median clip {statistics.median(clip_wers):.3f}")
    assert total <= CORPUS_WER_MAX
    assert statistics.median(clip_wers) <= MEDIAN_CLIP_WER_MAX


@pytest.mark.parametrize("fmt", FORMATS)
async def test_every_common_format_transcribes(
    tiny_engine: FasterWhisperEngine,
    corpus: list[tuple[Utterance, Path]],
    tmp_path: Path,
    fmt: str,
) -> None:
    utt, wav = corpus[1]
    encoded = encode(wav, fmt, tmp_path)
    result = await transcribe_file(tiny_engine, encoded, CONTENT_TYPES[fmt])
    assert word_error_rate(utt.text, result.text) <= FORMAT_WER_MAX, result.text


async def test_word_timestamps_are_ordered_and_inside_the_clip(
    tiny_engine: FasterWhisperEngine, corpus: list[tuple[Utterance, Path]]
) -> None:
    utt, wav = corpus[0]
    result = await transcribe_file(tiny_engine, wav, word_timestamps=True)
    words = [w for seg in result.segments for w in seg.words or []]
    assert len(words) >= len(utt.text.split()) - 2
    starts = [w.start for w in words]
    assert starts == sorted(starts)
    assert all(w.start <= w.end for w in words)
    assert words[-1].end <= decode_audio(wav).size / 16000 + 0.05


@pytest.mark.parametrize(
    "make",
    [
        lambda d: silence(5.0, d / "silence.wav"),
        lambda d: white_noise(5.0, d / "noise.wav", amplitude=0.1),
        lambda d: white_noise(5.0, d / "loud-noise.wav", amplitude=0.5, seed=3),
        lambda d: click(d / "click.wav", seconds=3.0),
    ],
    ids=["silence", "white-noise", "loud-white-noise", "click"],
)
async def test_silence_and_noise_give_an_empty_transcript(
    tiny_engine: FasterWhisperEngine, tmp_path: Path, make
) -> None:
    result = await transcribe_file(tiny_engine, make(tmp_path))
    assert result.text == ""
    assert result.is_empty
    assert result.segments == []
