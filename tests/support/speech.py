"""Real speech made during the test run, and the means to score what a recogniser heard.

espeak-ng speaks a fixed corpus of dictation-like sentences in several voices and speeds;
sox turns each into the 16 kHz mono 16-bit WAV the services work in, with a little
silence either side (as a push-to-talk clip has). Results are cached by a hash of
(text, voice, speed) so a second run is free.

The sentences hold no digits, number words, abbreviations or British/American spelling
pairs, so a correct transcript needs no number or spelling normalisation to score 0 WER.

Also here: synthetic non-speech (digital silence, white noise, a click), a duration
probe, and WER scoring through jiwer on normalised text.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import tempfile
import unicodedata
import wave
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import jiwer
import numpy as np
import numpy.typing as npt

SAMPLE_RATE = 16_000
PAD_S = 0.3  # silence sox adds before and after the speech


@dataclass(frozen=True)
class Utterance:
    text: str
    voice: str  # espeak-ng voice, optionally "+variant" (see `espeak-ng --voices=en`)
    speed_wpm: int
    id: str = ""  # short readable name; derived from the text when left empty

    def __post_init__(self) -> None:
        if not self.id:
            slug = "-".join(re.findall(r"[a-z]+", self.text.lower())[:4])
            object.__setattr__(self, "id", slug or "utterance")

    @property
    def key(self) -> str:
        """Content hash: what the cache is keyed on (the id is only a label)."""
        raw = "\x00".join((self.text, self.voice, str(self.speed_wpm)))
        return hashlib.sha256(raw.encode()).hexdigest()[:16]


# Voices: plain en-us / en-gb and the regional ones are espeak-ng's own; "+m3", "+f2"...
# are its variants. Note `en-gb+VARIANT` is silently ignored by espeak-ng 1.51 (the
# output is byte-identical to plain en-gb), so the British female uses `en+f3` (the
# same gmw/en British voice) and `en-gb-x-rp+f3`.
SENTENCES: list[Utterance] = [
    Utterance("Remind me to call the dentist.", "en-us", 175, id="dentist"),
    Utterance("Please turn off the kitchen lights.", "en+f3", 160, id="kitchen-lights"),
    Utterance(
        "Send a message to Sarah saying I will be a little late for dinner tonight.",
        "en-us+m3",
        165,
        id="late-for-dinner",
    ),
    Utterance(
        "Add milk, eggs, bread and fresh spinach to the shopping list.",
        "en-gb",
        140,
        id="shopping-list",
    ),
    Utterance(
        "The weather looks lovely this afternoon, so let us take the dog "
        "for a long walk in the park before it gets dark.",
        "en-us+f2",
        185,
        id="walk-the-dog",
    ),
    Utterance(
        "Could you find a quiet restaurant near the station that serves vegetarian food "
        "and has a table free on Friday evening?",
        "en+m7",
        190,
        id="restaurant",
    ),
    Utterance(
        "I think the main problem with the current design is that the settings page "
        "tries to do too much. We should split it into smaller sections and move "
        "the advanced options somewhere else.",
        "en-gb-scotland",
        150,
        id="design-review",
    ),
    Utterance(
        "Dear Thomas, thank you for sending the report so quickly. I have read it "
        "carefully and I agree with most of your conclusions. Let us meet next week "
        "to talk about the budget.",
        "en-us-nyc",
        160,
        id="email-thomas",
    ),
    Utterance(
        "Note to self: water the plants on the balcony, check the post, and ask the "
        "people next door whether they have seen the missing parcel.",
        "en-gb-x-rp+f3",
        130,
        id="note-to-self",
    ),
    Utterance(
        "Yesterday afternoon the team finished moving the old servers into the new "
        "building, and everything came back online without any trouble.",
        "en-us",
        120,
        id="server-move",
    ),
    Utterance(
        "Write this down for the meeting notes. The project is going well and the "
        "customers seem happy with the new features. However, we are still waiting "
        "for the legal team to approve the contract, and the marketing plan needs "
        "another review before the launch. Please make sure everyone has read the "
        "draft before Monday morning, and send any comments directly to Maria.",
        "en-gb-x-rp",
        160,
        id="meeting-notes",
    ),
    Utterance(
        "Start a new paragraph. When I first moved to this city, I did not know "
        "anybody, and the streets all looked the same to me. Over time I found a "
        "small bakery on the corner, a library with comfortable chairs, and a park "
        "where people play chess in the summer. Now it feels like home, and I cannot "
        "imagine living anywhere else. On weekends I walk along the river with my sister, "
        "and sometimes we stop for coffee at the little place by the bridge, where the "
        "owner always remembers our names.",
        "en-us+m3",
        170,
        id="new-city",
    ),
]


def synthesize(utt: Utterance, out_dir: Path) -> Path:
    """Speak `utt` into `out_dir` as 16 kHz mono 16-bit WAV padded with PAD_S of silence.

    Cached by content hash; written under a temporary name and renamed, so concurrent
    callers (threads or pytest-xdist workers) never see a half-written file.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{utt.id}-{utt.key}.wav"
    if target.exists():
        return target
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".synth-") as tmp_dir:
        raw = Path(tmp_dir) / "espeak.wav"
        converted = Path(tmp_dir) / "out.wav"
        # Text on stdin: never parsed as an option, whatever it starts with.
        subprocess.run(
            ["espeak-ng", "-v", utt.voice, "-s", str(utt.speed_wpm), "-w", str(raw), "--stdin"],
            input=utt.text.encode(),
            check=True,
            capture_output=True,
        )
        # -D: no dither, so the padding stays digital silence and output is reproducible.
        # espeak-ng peaks at full scale; 3 dB of headroom keeps the resampler from clipping.
        subprocess.run(
            ["sox", str(raw), "-D", "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16",
             "-e", "signed-integer", str(converted), "gain", "-3", "pad", str(PAD_S), str(PAD_S)],
            check=True,
            capture_output=True,
        )  # fmt: skip
        converted.replace(target)
    return target


def speech_corpus(
    out_dir: Path, utterances: Iterable[Utterance] = SENTENCES
) -> list[tuple[Utterance, Path]]:
    """Synthesize every utterance (in parallel; each is two subprocesses), in order."""
    utts = list(utterances)
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        paths = list(pool.map(lambda u: synthesize(u, out_dir), utts))
    return list(zip(utts, paths, strict=True))


# ---------------------------------------------------------------------------- scoring

# Spelling variants a recogniser may legitimately choose between; both sides are mapped
# to one form. Kept to pairs that really occur in Whisper output for dictation.
_VARIANTS: dict[str, str] = {
    "ok": "okay",
    "alright": "all right",
    "email": "e mail",
}

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'"})


def normalize(text: str) -> str:
    """Lowercase, drop punctuation (hyphens and slashes split words), collapse spaces.

    Apostrophes are removed inside words ("don't" -> "dont") on both sides alike.
    """
    text = unicodedata.normalize("NFKC", text).translate(_APOSTROPHES).lower()
    text = text.replace("'", "")
    text = re.sub(r"[^\w\s]|_", " ", text)
    words = [_VARIANTS.get(word, word) for word in text.split()]
    return " ".join(" ".join(words).split())


def _edits(reference: str, hypothesis: str) -> tuple[int, int]:
    """(substitutions + deletions + insertions, reference word count) on normalised text."""
    ref, hyp = normalize(reference), normalize(hypothesis)
    if not ref:  # jiwer refuses an empty reference: every hypothesis word is an insertion
        return len(hyp.split()), 0
    if not hyp:
        n = len(ref.split())
        return n, n
    out = jiwer.process_words(ref, hyp)
    return out.substitutions + out.deletions + out.insertions, len(ref.split())


def word_error_rate(reference: str, hypothesis: str) -> float:
    """WER of `hypothesis` against `reference` after `normalize` on both.

    An empty reference scores 0.0 against an empty hypothesis and 1.0 against any other.
    """
    edits, words = _edits(reference, hypothesis)
    if words == 0:
        return 0.0 if edits == 0 else 1.0
    return edits / words


def corpus_wer(pairs: Iterable[tuple[str, str]]) -> float:
    """Total edits over total reference words across (reference, hypothesis) pairs.

    Long utterances weigh more, as they should; this is not the mean of per-pair WERs.
    """
    total_edits = total_words = 0
    for reference, hypothesis in pairs:
        edits, words = _edits(reference, hypothesis)
        total_edits += edits
        total_words += words
    if total_words == 0:
        return 0.0 if total_edits == 0 else 1.0
    return total_edits / total_words


# ----------------------------------------------------------------- synthetic non-speech


def write_wav(path: Path, samples: npt.NDArray[np.floating], rate: int = SAMPLE_RATE) -> Path:
    """Write float samples in [-1, 1] as mono 16-bit PCM."""
    pcm = np.round(np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2")
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm.tobytes())
    return path


def read_wav(path: Path) -> tuple[npt.NDArray[np.float32], int]:
    """Mono 16-bit PCM WAV as float32 in [-1, 1], and its rate."""
    with wave.open(str(path), "rb") as wav:
        if wav.getnchannels() != 1 or wav.getsampwidth() != 2:
            raise ValueError(f"{path}: expected mono 16-bit PCM")
        rate = wav.getframerate()
        data = wav.readframes(wav.getnframes())
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32767.0, rate


def silence(seconds: float, path: Path) -> Path:
    """Digital silence: every sample exactly zero."""
    return write_wav(path, np.zeros(round(seconds * SAMPLE_RATE), dtype=np.float32))


def white_noise(seconds: float, path: Path, amplitude: float = 0.1, seed: int = 0) -> Path:
    """Uniform white noise with peak `amplitude` (full scale = 1.0); RMS is amplitude/sqrt(3).

    Seeded, so the same call always writes the same file.
    """
    if not 0.0 < amplitude <= 1.0:
        raise ValueError("amplitude must be in (0, 1]")
    rng = np.random.default_rng(seed)
    n = round(seconds * SAMPLE_RATE)
    return write_wav(path, rng.uniform(-amplitude, amplitude, n))


def click(path: Path, seconds: float = 1.0, amplitude: float = 0.9) -> Path:
    """A single short click (a 1 ms decaying impulse) in the middle of digital silence.

    What a key press or a microphone bump leaves in an otherwise empty push-to-talk clip.
    """
    samples = np.zeros(round(seconds * SAMPLE_RATE), dtype=np.float32)
    length = SAMPLE_RATE // 1000
    start = len(samples) // 2
    samples[start : start + length] = amplitude * np.exp(-np.arange(length) / (length / 5))
    return write_wav(path, samples)


def duration_s(path: Path) -> float:
    """Duration of a WAV file from its header (frames / rate)."""
    with wave.open(str(path), "rb") as wav:
        return wav.getnframes() / wav.getframerate()


def rms(samples: npt.NDArray[np.floating]) -> float:
    return float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) if samples.size else 0.0
