"""A user's own dictation: the words they say often, and how they want them written.

Both travel with every recording (`RecordingOptions.vocabulary`, `.replacements`): the
gateway resolves them from the user's settings when it accepts a recording, so the
audio service and the workers never look a user up, and one user's words never reach
another's recording. The worker turns `vocabulary` into the recogniser's prompt and
applies `replacements` to the recognised text before any agent sees it (the raw text is
kept beside it).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

MAX_VOCABULARY = 200
"""Terms per user: more than fits Whisper's 224-token prompt is never used anyway."""
MAX_TERM_CHARS = 64
MAX_REPLACEMENTS = 100
MAX_SPOKEN_CHARS = 100
MAX_WRITTEN_CHARS = 200

Term = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_TERM_CHARS)
]


class Replacement(BaseModel):
    """Say `spoken`, get `written`: "new paragraph" → a blank line, "k8s" → "Kubernetes".

    `spoken` matches whole words, ignoring case and the punctuation the recogniser put
    around it; `written` is inserted as given (it may be empty, or contain newlines), a
    lowercase word capitalised where it starts a sentence (`apply_replacements`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    spoken: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_SPOKEN_CHARS)
    ]
    written: str = Field(max_length=MAX_WRITTEN_CHARS)


_GAP = r"(?:[^\S\n]|[,.;:!?-])+"
"""Between the words of a spoken phrase: what the recogniser may put there ("new, paragraph")."""
_PUNCTUATION = ".,;:!?"
_SENTENCE_END = ".!?"
_CLAUSE = ",;:"


@functools.lru_cache(maxsize=64)
def _pattern(rules: tuple[Replacement, ...]) -> re.Pattern[str]:
    """One alternation, longest spoken phrase first, so each stretch of text is replaced
    once: no rule runs on another's output. The comma and spaces before the phrase and
    the punctuation and spaces after it are captured, for `_written` to keep or drop."""
    bodies = "|".join(
        f"(?P<r{n}>{_GAP.join(re.escape(word) for word in rule.spoken.split())})"
        for n, rule in enumerate(rules)
    )
    return re.compile(
        rf"(?P<lead>[{re.escape(_CLAUSE)}]?[^\S\n]*)(?<!\w)(?:{bodies})(?!\w)"
        rf"(?P<punct>[{re.escape(_PUNCTUATION)}]*)(?P<trail>[^\S\n]*)",
        re.IGNORECASE,
    )


def _written(match: re.Match[str], rules: tuple[Replacement, ...]) -> str:
    """What replaces one match, with the recogniser's spacing and punctuation around it.

    A written text that starts with a space, a line break or punctuation ("\\n\\n", ".")
    takes the place of the comma and space before the phrase; one that ends with a space or
    line break also takes the phrase's own punctuation and the space after it ("the end.
    New paragraph. Next" → "the end.\\n\\nNext"); one that ends with punctuation replaces
    the phrase's.
    An empty one removes the phrase and one of the commas around it, keeping a full stop
    that ends a sentence.
    A lowercase word said at the start of a sentence is capitalised there ("btw" → "by the
    way" → "By the way, …"); a written word with capitals ("GitHub", "iOS") stays as given."""
    n = next(n for n in range(len(rules)) if match.group(f"r{n}") is not None)
    lead, punct, trail = match.group("lead"), match.group("punct"), match.group("trail")
    preceding = match.string[: match.start()]  # the lead, never a line break, is not in it
    starts_line = not preceding.strip() or preceding.endswith("\n")
    written = rules[n].written
    if not written:
        if starts_line:
            return ""
        ends = "".join(c for c in punct if c in _SENTENCE_END)
        marks = [c for c in lead + punct if c in _CLAUSE]
        return (ends or (marks[0] if marks else "")) + trail
    starts_sentence = starts_line or preceding.rstrip()[-1] in _SENTENCE_END
    first = written.split(maxsplit=1)[0] if written.strip() else ""
    if starts_sentence and first.islower() and match.group(f"r{n}")[:1].isupper():
        written = written[0].upper() + written[1:]
    before = "" if written[0].isspace() or written[0] in _PUNCTUATION else lead
    if written[-1].isspace():
        after = ""
    elif written[-1] in _PUNCTUATION:
        after = trail
    else:
        after = punct + trail
    return before + written + after


def apply_replacements(text: str, replacements: Iterable[Replacement]) -> str:
    """`text` as the user wants it written: each spoken phrase, as a whole word or words in
    any case, becomes its written form, longest phrase first (so "new paragraph" wins over
    "new"). Never inside another word; the user's text is matched literally, never as a
    pattern."""
    rules = tuple(sorted(replacements, key=lambda r: len(r.spoken), reverse=True))
    if not rules or not text:
        return text
    return _pattern(rules).sub(lambda match: _written(match, rules), text)
