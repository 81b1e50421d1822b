"""Whisper on a window the size of the clip, not 30 seconds.

faster-whisper's `transcribe()` pads every input to 3000 mel frames, so a 5-s push-to-talk
clip costs as much to encode (and, through cross-attention, to decode) as a 30-s one.
CTranslate2 accepts shorter encoder inputs: here the speech is encoded with a margin of
silence after it and decoded in one pass, which is 3-5x faster on such clips.

The pass is greedy unless it carries a prompt (a user's vocabulary, a caller's prompt): then
it is a beam search (`prompt_beam_size`). Greedy, tiny.en copied the prompt's list of names
as a list ("forward the Invoista Siobhan Okonkwo, Kestrel Dynamics, Anjali Raghunathan,":
"invoice to" and "and copy" lost) or wrote past its window, and a vocabulary gained less
than on the full path. Mean clip WER / names right with the vocabulary, on the five clips of
`tests/transcription/test_vocabulary.py` (15 names) and eight others (24 names, other
voices); CPU ms per pass, median of 13 clips x 5-6 rounds (two runs, ratio to greedy):

| with the vocabulary prompt      | 15-name set       | 24-name set      | CPU ms           |
|---------------------------------|-------------------|------------------|------------------|
| greedy (before; 1 fell back)    | 0.455 / 10        | 0.434 / 11       | 211-213          |
| short window, beam 3            | 0.347 / 8         | 0.322 / 12       | 231-243 (1.1x)   |
| short window, beam 5 (chosen)   | 0.380 / 10        | 0.297 / 14       | 257-274 (1.2-1.3x) |
| full 30-s path (beam 1)         | 0.31-0.39 / 10-11 | 0.475-0.491 / 13 | 463-563 (2.2-2.6x) |

A 2-s trailing margin (0.376 / 10, 0.409 / 12), `suppress_blank` off, a larger token cap and
a prompt without timestamps did less or nothing; the full path's edge on the first set came
from its 30-s window (this decoder on a padded 30-s window wrote the same text), at 2-3x the
cost. Without a prompt a beam did worse (beam 5: WER 0.636 -> 0.836 on the first set), so
those passes stay greedy.

A short window has known failure modes — with too little trailing silence the decoder
loops ("all all all…"), and short inputs cost some models accuracy — so every pass is
checked (token cap, compression ratio, repeated n-grams, timestamps inside the window, a
confident language detection, no "silence" verdict on what VAD called speech) and any trip
returns a `Fallback` naming the guard: the engine then runs the full 30-s path, which has
Whisper's temperature fallback and its own silence rule.
"""

from __future__ import annotations

import inspect
import math
import re
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt

from whisp_shared.events import Segment, Word
from whisp_transcription.engines.base import SAMPLE_RATE

if TYPE_CHECKING:
    from faster_whisper import WhisperModel
    from faster_whisper.tokenizer import Tokenizer

    from whisp_transcription.settings import FasterWhisperSettings

MIN_MARGIN_FRAMES: Final = 100
"""1 s of mel frames after the speech: with 0.2 s the decoder looped on 2 of 4 clips."""
MIN_WINDOW_FRAMES: Final = 200
"""2 s in all, however short the clip: a click must not become a 0.3-s encoder input."""
FRAMES_PER_SECOND: Final = 100
TOKEN_SLACK: Final = 16
"""Tokens allowed beyond the per-second cap (a timestamp pair, a short clip's punctuation)."""
TIME_PRECISION: Final = 0.02
MAX_INITIAL_TIMESTAMP_S: Final = 1.0
COMPRESSION_RATIO_LIMIT: Final = 2.4
"""Whisper's own threshold for "too repetitive"."""
LANGUAGE_CONFIDENCE: Final = 0.5
"""`transcribe()`'s own detection threshold. Below it the short window is not trusted to
tell languages apart (an espeak German clip: en 0.42 / de 0.30 short, de 0.41 / en 0.40 on
30 s), so the full path detects on its 30-s window."""
REPEATS_LIMIT: Final = 4
"""The same 1-6 word phrase this many times in a row is a loop, not dictation."""
_REPEATED_PHRASE = re.compile(rf"\b((?:\S+\s+){{0,5}}?\S+)(?:\s+\1\b){{{REPEATS_LIMIT - 1},}}")


@dataclass(frozen=True)
class Fallback:
    """Why the short window was not trusted; the engine runs the full path instead."""

    reason: str
    detail: str = ""


@dataclass(frozen=True)
class ShortResult:
    text: str
    language: str
    segments: list[Segment]


def window_frames(speech_frames: int, margin_frames: int) -> int:
    """Encoder input length: the speech, at least the minimum margin, at least the minimum
    window — whatever the configuration asks for."""
    return max(speech_frames + max(margin_frames, MIN_MARGIN_FRAMES), MIN_WINDOW_FRAMES)


def token_cap(duration_s: float, tokens_per_s: float) -> int:
    return math.ceil(duration_s * tokens_per_s) + TOKEN_SLACK


def compression_ratio(text: str) -> float:
    raw = text.encode()
    return len(raw) / len(zlib.compress(raw)) if raw else 0.0


def has_repeated_phrase(text: str) -> bool:
    return _REPEATED_PHRASE.search(text.lower()) is not None


@dataclass(frozen=True)
class Pass:
    """What one short-window decode wrote, before anyone trusts it."""

    tokens: list[int]
    text: str
    avg_logprob: float
    no_speech_prob: float

    def is_silence(self, no_speech_threshold: float, log_prob_threshold: float) -> bool:
        """Whisper's own rule (as `transcribe()` applies it): likely silence *and* unsure."""
        return self.no_speech_prob > no_speech_threshold and self.avg_logprob < log_prob_threshold


def judge(decoded: Pass, cap: int, pieces: list[dict[str, Any]] | None) -> Fallback | None:
    """The guards, in order; None when the pass can be trusted. A loop usually also runs
    into the token cap: it is reported as the loop it is.

    Low confidence alone is not a trip: on German and French clips with Whisper base the
    full path's temperature fallback returned the same text at 7-10x the cost.
    """
    ratio = compression_ratio(decoded.text)
    if ratio > COMPRESSION_RATIO_LIMIT:
        return Fallback("compression", f"ratio {ratio:.2f}")
    if has_repeated_phrase(decoded.text):
        return Fallback("repetition", decoded.text[-80:])
    if len(decoded.tokens) >= cap:
        return Fallback("token_cap", f"{len(decoded.tokens)} tokens, cap {cap}")
    if pieces is None:
        return Fallback("timestamps", "a timestamp past the window")
    return None


class ShortWindowDecoder:
    """One model's short-window pass; built per load, used from the model thread only."""

    def __init__(self, model: WhisperModel, settings: FasterWhisperSettings) -> None:
        self.model = model
        self.settings = settings
        self._tokenizers: dict[str, Tokenizer] = {}

    def decode(
        self,
        speech: npt.NDArray[np.float32],
        language: str | None,
        prompt: str | None,
        words: bool,
        greedy: bool = False,
    ) -> ShortResult | Fallback:
        """Transcribe `speech` (VAD-trimmed samples) in one short pass, or say why not.
        `greedy`: no beam even with a prompt (a live partial: the final pass corrects it,
        and a beam would cost every partial ~1.3x).

        Always with timestamp tokens: segments keep real times, and without them the pass
        looped on a 2-s clip ("Open the garage door." to the token cap) for ~10 % saved."""
        model = self.model
        window = self.settings.short_window
        duration_s = len(speech) / SAMPLE_RATE
        # The extractor yields one frame too many (the STFT's centred last hop).
        features = model.feature_extractor(speech)[:, :-1]
        speech_frames = features.shape[-1]
        total = window_frames(speech_frames, round(window.margin_s * FRAMES_PER_SECOND))
        # Zero *features* (not zero samples): 1 s of zero audio made one clip loop.
        encoder_output = model.encode(np.pad(features, ((0, 0), (0, total - speech_frames))))
        if language is None:
            language, probability = self._detect_language(encoder_output)
            if probability < LANGUAGE_CONFIDENCE:
                return Fallback("language", f"{language} at {probability:.2f}")
        tokenizer = self._tokenizer(language)
        prompt_ids = self._prompt(tokenizer, prompt)
        # CTranslate2 lets Whisper write min(max_length / 2, max_length - prompt) tokens
        # (whisper.cc; CTranslate2 #1856), so at most half the 448-token context.
        cap = min(token_cap(duration_s, window.max_tokens_per_s), model.max_length // 2)
        if len(prompt_ids) + cap > model.max_length:
            return Fallback("prompt_too_long", f"{len(prompt_ids)} prompt tokens")
        prompted = prompt_ids[0] == tokenizer.sot_prev
        result = model.model.generate(
            encoder_output,
            [prompt_ids],
            beam_size=window.prompt_beam_size if prompted and not greedy else 1,
            max_length=max(2 * cap, len(prompt_ids) + cap),
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=_suppressed(tokenizer),
            max_initial_timestamp_index=round(MAX_INITIAL_TIMESTAMP_S / TIME_PRECISION),
        )[0]
        tokens: list[int] = list(result.sequences_ids[0])
        decoded = Pass(
            tokens=tokens,
            text=tokenizer.decode(tokens).strip(),
            avg_logprob=result.scores[0] * len(tokens) / (len(tokens) + 1),
            no_speech_prob=result.no_speech_prob,
        )
        if decoded.is_silence(self.settings.no_speech_threshold, self.settings.log_prob_threshold):
            # VAD heard speech: a short window is surer of silence than a 30-s one ("Pause
            # the music.", 2 s: no_speech 0.64 here, 0.21 there), so the full path decides.
            return Fallback("no_speech", f"no_speech_prob {decoded.no_speech_prob:.2f}")
        pieces = split_by_timestamps(tokens, tokenizer.timestamp_begin, duration_s)
        tripped = judge(decoded, cap, pieces)
        if tripped is not None:
            return tripped
        assert pieces is not None  # judge trips on None
        if words:
            self._add_words(pieces, tokenizer, encoder_output, speech_frames)
        segments = [seg for seg in (_segment(p, tokenizer, words) for p in pieces) if seg.text]
        return ShortResult(" ".join(seg.text for seg in segments), language, segments)

    def _prompt(self, tokenizer: Tokenizer, prompt: str | None) -> list[int]:
        """`transcribe()`'s prompt layout: the user's prompt as previous text, then the
        start-of-transcript sequence (with timestamps)."""
        ids: list[int] = self.model.get_prompt(tokenizer, [], without_timestamps=False)
        if not prompt:
            return ids
        previous = tokenizer.encode(" " + prompt.strip())[-(self.model.max_length // 2 - 1) :]
        return [tokenizer.sot_prev, *previous, *ids]

    def _detect_language(self, encoder_output: Any) -> tuple[str, float]:
        if not self.model.model.is_multilingual:
            return "en", 1.0
        token, probability = self.model.model.detect_language(encoder_output)[0][0]
        return str(token[2:-2]), float(probability)

    def _tokenizer(self, language: str) -> Tokenizer:
        from faster_whisper.tokenizer import Tokenizer  # noqa: PLC0415 (heavy; loaded with the model)

        if language not in self._tokenizers:
            self._tokenizers[language] = Tokenizer(
                self.model.hf_tokenizer,
                self.model.model.is_multilingual,
                task="transcribe",
                language=language,
            )
        return self._tokenizers[language]

    def _add_words(
        self, pieces: list[dict[str, Any]], tokenizer: Tokenizer, encoder_output: Any, frames: int
    ) -> None:
        """Cross-attention alignment on the same short encoder output (faster-whisper's own
        word-timing routine; it only needs the speech's frame count)."""
        defaults = inspect.signature(type(self.model).transcribe).parameters
        self.model.add_word_timestamps(
            [pieces],
            tokenizer,
            encoder_output,
            frames,
            defaults["prepend_punctuations"].default,
            defaults["append_punctuations"].default,
            0.0,
        )


def _suppressed(tokenizer: Tokenizer) -> list[int]:
    """What `transcribe()` suppresses by default (`suppress_tokens=[-1]`): symbols and the
    task/language tokens, so the short pass is held to the same rules."""
    return sorted(
        {
            *tokenizer.non_speech_tokens,
            tokenizer.transcribe,
            tokenizer.translate,
            tokenizer.sot,
            tokenizer.sot_prev,
            tokenizer.sot_lm,
        }
    )


def split_by_timestamps(
    tokens: list[int], timestamp_begin: int, duration_s: float
) -> list[dict[str, Any]] | None:
    """Segments from `<|t0|> text <|t1|><|t1'|> text <|t2|>`; None when a timestamp points
    past the window (the decoder is guessing, not listening)."""
    pieces: list[dict[str, Any]] = []
    start: float | None = None
    text_tokens: list[int] = []
    for token in tokens:
        if token < timestamp_begin:
            text_tokens.append(token)
            continue
        time = (token - timestamp_begin) * TIME_PRECISION
        if time > duration_s + MIN_MARGIN_FRAMES / FRAMES_PER_SECOND:
            return None
        if start is None:
            start = time
        elif text_tokens:
            pieces.append({"seek": 0, "start": start, "end": time, "tokens": text_tokens})
            start, text_tokens = None, []
        else:
            start = time
    if text_tokens:  # no closing timestamp: the segment runs to the end of the speech
        begin = start if start is not None else 0.0
        pieces.append({"seek": 0, "start": begin, "end": duration_s, "tokens": text_tokens})
    return pieces


def _segment(piece: dict[str, Any], tokenizer: Tokenizer, words: bool) -> Segment:
    return Segment(
        start=round(piece["start"], 3),
        end=round(max(piece["end"], piece["start"]), 3),
        text=tokenizer.decode(piece["tokens"]).strip(),
        words=[
            Word(
                start=round(w["start"], 3),
                end=round(w["end"], 3),
                word=w["word"].strip(),
                probability=round(float(w["probability"]), 4),
            )
            for w in piece.get("words", [])
        ]
        if words
        else None,
    )
