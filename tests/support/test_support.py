"""Checks of the test-support code itself: the speech corpus, the scoring, the formats."""

from __future__ import annotations

import math
import re
import wave
from pathlib import Path

import numpy as np
import pytest

from tests.support.formats import (
    CONTENT_TYPES,
    FORMATS,
    decode,
    decode_mono,
    decoded_duration_s,
    encode,
)
from tests.support.speech import (
    PAD_S,
    SAMPLE_RATE,
    SENTENCES,
    Utterance,
    click,
    corpus_wer,
    duration_s,
    normalize,
    read_wav,
    rms,
    silence,
    speech_corpus,
    synthesize,
    white_noise,
    word_error_rate,
)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Utterance, Path]]:
    out = tmp_path_factory.mktemp("speech")
    return {utt.id: (utt, path) for utt, path in speech_corpus(out)}


# ------------------------------------------------------------------------------- corpus


def test_corpus_is_varied_and_plain() -> None:
    assert len(SENTENCES) >= 10
    assert len({u.id for u in SENTENCES}) == len(SENTENCES)
    assert len({u.key for u in SENTENCES}) == len(SENTENCES)
    assert len({u.voice for u in SENTENCES}) >= 5
    assert all(120 <= u.speed_wpm <= 190 for u in SENTENCES)
    assert max(u.speed_wpm for u in SENTENCES) - min(u.speed_wpm for u in SENTENCES) >= 50
    for utt in SENTENCES:
        assert not re.search(r"\d", utt.text), utt.id
        assert normalize(utt.text), utt.id


@pytest.mark.parametrize("utt_id", [u.id for u in SENTENCES])
def test_each_utterance_is_real_16k_mono_speech(
    corpus: dict[str, tuple[Utterance, Path]], utt_id: str
) -> None:
    _, path = corpus[utt_id]
    with wave.open(str(path), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 16_000)
    assert 2.0 <= duration_s(path) <= 30.0
    samples, _ = read_wav(path)
    assert 20 * math.log10(rms(samples)) > -35.0  # speech, far above silence
    assert np.abs(samples).max() < 0.99  # not clipped
    # The padding: silence before and after the speech.
    pad = int(0.9 * PAD_S * SAMPLE_RATE)
    assert np.abs(samples[:pad]).max() < 1e-3
    assert np.abs(samples[-pad:]).max() < 1e-3


def test_durations_span_short_to_long(corpus: dict[str, tuple[Utterance, Path]]) -> None:
    durations = [duration_s(path) for _, path in corpus.values()]
    assert min(durations) < 4.0
    assert max(durations) > 20.0


def test_synthesize_is_cached(
    corpus: dict[str, tuple[Utterance, Path]], tmp_path_factory: pytest.TempPathFactory
) -> None:
    utt, path = corpus[SENTENCES[0].id]
    mtime = path.stat().st_mtime_ns
    assert synthesize(utt, path.parent) == path
    assert path.stat().st_mtime_ns == mtime
    # Same content, same bytes: the cache key really is (text, voice, speed).
    fresh = synthesize(utt, tmp_path_factory.mktemp("fresh"))
    assert fresh.read_bytes() == path.read_bytes()


def test_every_voice_sounds_different(tmp_path: Path) -> None:
    """Guards the voice list: espeak-ng ignores some variant spellings silently
    (`en-gb+f3` is plain `en-gb`), which would make two "voices" one."""
    text = "Please open the window."
    voices = sorted({u.voice for u in SENTENCES})
    audio = {v: synthesize(Utterance(text, v, 160), tmp_path).read_bytes() for v in voices}
    assert len(set(audio.values())) == len(voices)


# ------------------------------------------------------------------------------ scoring


def test_normalize() -> None:
    assert normalize("Hello, World!  How's it   going?") == "hello world hows it going"
    assert normalize("  Don\u2019t STOP\u2014now.\n") == "dont stop now"
    assert normalize("well-known e-mail") == normalize("well known email")
    assert normalize("OK, alright.") == "okay all right"
    assert normalize("...") == ""


def test_wer_identical_is_zero() -> None:
    text = SENTENCES[-1].text
    assert word_error_rate(text, text) == 0.0
    assert word_error_rate("Remind me to call the dentist.", "remind me to call the dentist") == 0.0


def test_wer_fully_wrong_is_one() -> None:
    assert word_error_rate("remind me to call", "purple cats sing loudly") == 1.0
    assert word_error_rate("remind me to call", "") == 1.0


def test_wer_known_edits() -> None:
    # One substitution in five words.
    assert word_error_rate("please open the kitchen window", "please open the garden window") == (
        pytest.approx(0.2)
    )
    # One deletion and one insertion in four words.
    assert word_error_rate("call the dentist now", "call dentist now please") == pytest.approx(0.5)


def test_wer_empty_reference() -> None:
    assert word_error_rate("", "") == 0.0
    assert word_error_rate("", "hello") == 1.0


def test_corpus_wer_weighs_by_reference_words() -> None:
    pairs = [("a b c d", "a b c d"), ("x y", "x z")]
    assert corpus_wer(pairs) == pytest.approx(1 / 6)  # not the mean of 0 and 0.5
    assert corpus_wer([(u.text, u.text.upper()) for u in SENTENCES]) == 0.0
    assert corpus_wer([]) == 0.0


# ------------------------------------------------------------------- synthetic non-speech


def test_silence_is_all_zeros(tmp_path: Path) -> None:
    path = silence(1.5, tmp_path / "silence.wav")
    samples, rate = read_wav(path)
    assert rate == SAMPLE_RATE
    assert duration_s(path) == pytest.approx(1.5)
    assert samples.size == 24_000
    assert not samples.any()


@pytest.mark.parametrize("amplitude", [0.01, 0.3])
def test_white_noise_has_requested_amplitude(tmp_path: Path, amplitude: float) -> None:
    path = white_noise(2.0, tmp_path / "noise.wav", amplitude)
    samples, rate = read_wav(path)
    assert rate == SAMPLE_RATE
    assert duration_s(path) == pytest.approx(2.0)
    peak = float(np.abs(samples).max())
    assert amplitude * 0.98 <= peak <= amplitude + 1 / 32767
    assert rms(samples) == pytest.approx(amplitude / math.sqrt(3), rel=0.03)
    assert abs(float(samples.mean())) < amplitude * 0.02
    # White: neighbouring samples are uncorrelated.
    assert abs(float(np.corrcoef(samples[:-1], samples[1:])[0, 1])) < 0.05


def test_click_is_one_short_impulse(tmp_path: Path) -> None:
    path = click(tmp_path / "click.wav")
    samples, _ = read_wav(path)
    assert duration_s(path) == pytest.approx(1.0)
    loud = np.flatnonzero(np.abs(samples) > 0.01)
    assert loud.size > 0
    assert loud[-1] - loud[0] < SAMPLE_RATE * 0.002  # within 2 ms
    assert np.abs(samples).max() > 0.5
    assert np.count_nonzero(samples) <= SAMPLE_RATE * 0.002


# ------------------------------------------------------------------------------ formats

EXPECTED = {  # fmt -> (sample rate, channels) a decoder must report
    "wav44k_stereo": (44_100, 2),
    "flac": (16_000, 1),
    "mp3": (44_100, 1),
    "ogg_opus": (48_000, 1),
    "webm_opus": (48_000, 1),
}


def test_content_types_cover_every_format() -> None:
    assert set(CONTENT_TYPES) == set(FORMATS) == set(EXPECTED)
    assert CONTENT_TYPES == {
        "wav44k_stereo": "audio/wav",
        "flac": "audio/flac",
        "mp3": "audio/mpeg",
        "ogg_opus": "audio/ogg",
        "webm_opus": "audio/webm",
    }


@pytest.mark.parametrize("fmt", sorted(EXPECTED))
def test_format_round_trips(
    corpus: dict[str, tuple[Utterance, Path]], tmp_path: Path, fmt: str
) -> None:
    _, src = corpus["late-for-dinner"]
    out = encode(src, fmt, tmp_path)
    assert out.suffix == FORMATS[fmt].suffix
    assert out.stat().st_size > 1000

    samples, rate, channels = decode(out)
    assert (rate, channels) == EXPECTED[fmt]
    assert samples.shape[0] == channels
    assert decoded_duration_s(out) == pytest.approx(duration_s(src), abs=0.1)
    if channels == 2:
        np.testing.assert_allclose(samples[0], samples[1])  # mono spread to both sides

    # Same signal: back at 16 kHz mono it correlates with the source sample for sample.
    source, _ = read_wav(src)
    back = decode_mono(out, SAMPLE_RATE)
    n = min(len(source), len(back))
    assert abs(len(source) - len(back)) < 0.1 * SAMPLE_RATE
    corr = float(np.corrcoef(source[:n], back[:n])[0, 1])
    assert corr > 0.9, f"{fmt}: correlation {corr:.3f}"
    if fmt == "flac":  # lossless
        np.testing.assert_allclose(back[:n], source[:n], atol=1 / 32767)


def test_encode_reuses_output(corpus: dict[str, tuple[Utterance, Path]], tmp_path: Path) -> None:
    _, src = corpus["dentist"]
    first = encode(src, "ogg_opus", tmp_path)
    mtime = first.stat().st_mtime_ns
    assert encode(src, "ogg_opus", tmp_path) == first
    assert first.stat().st_mtime_ns == mtime
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # no temporary left behind
