"""A user's vocabulary as the recogniser's prompt: the one place that phrases it.

Whisper takes a prompt as "the text before this audio" and copies its spelling *and its
style*. Measured here (tiny.en, int8, beam 1, the worker's own path; five espeak-ng
sentences full of rare names and jargon, 15 names in all, e.g. "Please forward the
invoice to Siobhan Okonkwo at Kestrel Dynamics and copy Anjali Raghunathan."; and six
sentences with none of the words, to see what a vocabulary costs where it is not said).
Mean clip WER / names right / WER on the clips without the words (ranges: two runs, the
full path's temperature fallback samples; `tests/transcription/test_vocabulary.py`
asserts the chosen form's gain):

| prompt (15-term vocabulary)                   | short window         | full 30-s path       |
|-----------------------------------------------|----------------------|----------------------|
| none                                          | 0.653 / 2 / 0.165    | 0.69-0.71 / 1 / 0.132 |
| bare list "A, B, C"                           | 0.486 / 9 / 0.218    | 0.40-0.41 / 11 / 0.278 |
| "Glossary: A, B, C."                          | 0.471 / 8 / 0.250    | 0.35-0.36 / 11 / 0.245 |
| "Vocabulary: A, B, C."                        | 0.454 / 8 / 0.250    | 0.345 / 12 / 0.245   |
| "A, B and C were mentioned."                  | 0.533 / 6 / 0.250    | 0.534 / 8 / 0.245    |
| "We talk about A, B and C." (chosen)          | 0.408 / 8 / 0.182    | 0.344 / 10-11 / 0.260 |
| the same, terms in reverse order              | 0.437 / 5 / 0.242    |                      |
| "We talk about …" then the caller's prompt    | 0.423 / 7 / 0.182    |                      |
| the caller's prompt, then "We talk about …"   | 0.424 / 8 / 0.234    |                      |
| the caller's prompt alone                     | 0.743 / 1 / 0.181    | 0.777 / 1 / 0.132    |

That table's short window was greedy. It now searches a beam when prompted (beam 5,
`engines/short_window.py`, where the greedy pass wrote lists), and the forms come closer:
sentence 0.380 / 10 / 0.144, bare list 0.379 / 9, "Vocabulary:" 0.363 / 11, "Glossary:"
0.395 / 9; on another eight clips (24 names; not the second set below) 0.297 / 14, 0.326 /
15, 0.348 / 13, 0.326 / 13. Within the noise of each other: the sentence stays.

With 25 terms (10 of them never said) the chosen form gives 0.457 / 8 / 0.272, and
0.472 / 8 / 0.177 with the caller's prompt after it; the bare list falls to 0.641 / 5.
A second set (eight other sentences and voices, 24 terms, short window) agreed on the
order: none 0.804 / 3 of 24 / 0.165, bare list 0.674 / 6 / 0.288, "Glossary:" 0.53-0.54 /
10-11 / 0.225, "A, B and C were mentioned." 0.549 / 8 / 0.160, "We talk about" 0.506 / 8 /
0.257. "Glossary:" lands about as many names but loses more of the words around them;
the sentence has the lowest WER on both sets. Differences under ~0.03 WER or 2 names
are noise here (a clip that falls back to the full path samples at temperature > 0).
No vocabulary word ever appeared in a clip that did not say it. Lists ("A, B, C") make
the recogniser write lists: it drops the words between names ("forward the Invoista
Siobhan Okonkwo, Kestrel Dynamics, Anjali Raghunathan," — "copy" lost); a sentence keeps
it writing prose. Hence: one sentence, the terms in the user's order (the first ones are
kept when the budget is short; order changes which names land), then the caller's own
prompt last, nearest the audio (it also spared the clips without the names there), where
both faster-whisper and OpenAI keep it when a prompt is too long (they keep its end).

faster-whisper's `hotwords` (1.2.1) is the same text in the same place (`<|startofprev|>`
hotwords, then the prompt) on the first 30-s window, but is repeated on every later window,
while `initial_prompt` is dropped after the first (`condition_on_previous_text=False`). On
a 92-s clip of the five sentences three times it got more names (14/45 against 8/45) and
more errors (WER 0.82 against 0.70: words dropped around the names), so every path takes
the vocabulary as its prompt, the same way.

Budget: Whisper's prompt holds 223 tokens (`max_length // 2 - 1`), and the short window
refuses a prompt that leaves no room for its token cap (`prompt_too_long`: prompt +
cap > 448, the cap itself at most 224). `PROMPT_TOKENS` keeps the vocabulary clear of
both: `<|startofprev|>` + 220 + the three start tokens + 224 = 448.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Final

PROMPT_TOKENS: Final = 220
"""Tokens the vocabulary and the caller's prompt may take together."""


def phrase(terms: Sequence[str], language: str | None) -> str:
    """The measured form for English: one sentence naming the terms. Any other language (or
    one still to be detected) gets the bare list, unmeasured: an English sentence there
    could pull the decode towards English, and names read the same in every language."""
    if not is_english(language):
        return ", ".join(terms) + "."
    if len(terms) == 1:
        return f"We talk about {terms[0]}."
    return f"We talk about {', '.join(terms[:-1])} and {terms[-1]}."


def is_english(language: str | None) -> bool:
    return language is not None and language.lower().replace("_", "-").split("-")[0] == "en"


def recogniser_prompt(
    prompt: str | None,
    vocabulary: Sequence[str],
    language: str | None,
    count_tokens: Callable[[str], int],
    budget: int = PROMPT_TOKENS,
) -> str | None:
    """The prompt for one decode in `language` (None: not known yet): the vocabulary
    sentence, then the caller's `prompt`.

    The caller's prompt is always kept whole (the engine trims one that is too long on its
    own, as before); then as many terms as fit in `budget` tokens, in the user's order,
    duplicates (ignoring case) once. `count_tokens` is the engine's tokenizer (or an
    estimate where the tokenizer is remote)."""
    caller = (prompt or "").strip()
    first: dict[str, str] = {}
    for term in vocabulary:
        if term.strip():
            first.setdefault(term.strip().casefold(), term.strip())
    terms = list(first.values())

    def joined(n: int) -> str:
        return " ".join(part for part in (phrase(terms[:n], language) if n else "", caller) if part)

    # The token count grows with each term kept: the largest n that fits, by bisection.
    low, high = 0, len(terms)
    while low < high:
        mid = (low + high + 1) // 2
        if count_tokens(joined(mid)) <= budget:
            low = mid
        else:
            high = mid - 1
    return joined(low) or None


def estimate_tokens(text: str) -> int:
    """Whisper tokens in `text` without its tokenizer: two bytes a token, the fewest
    measured here (rare names and jargon; English prose is 4-6)."""
    return math.ceil(len(text.encode()) / 2)
