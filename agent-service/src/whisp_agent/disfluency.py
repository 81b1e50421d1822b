"""Speech disfluencies removed by rule before a model sees the text (`filters: [disfluencies]`).

Small local models clean dictation well enough in punctuation and casing but miss fillers
and self-corrections often (measured in the agent eval). What a rule can do without
guessing is done here; anything ambiguous is left to the model:
- hesitations (um, uh, er, erm, hmm, …) always go;
- "you know", "I mean", "like" go only where set off as a filler (", you know,"), and
  "you know" / "I mean" also where what follows cannot be their object ("is you know pretty
  good", "after that I mean if there is time"; "you know the way" stays); "like" also
  between a form of "to be" and a word of degree ("are like a bit too bright"; "is like a
  dream" stays) and after an opening "so" ("so like the design …");
- a self-correction goes only with evidence for what it replaces: a marker ("no wait",
  "sorry", "I mean", "actually", …) between two words of one kind (two weekdays, two
  numbers, two months: "Tuesday, no wait, Wednesday"), or a repair that starts with a word
  just said ("to Tom, sorry, to Tim") or repeats the word after the replaced one ("forty
  dollars sorry fourteen dollars"). The marker and the replaced words are dropped.
"""

from __future__ import annotations

import re

HESITATION = re.compile(
    r"(?<![\w'])(?:[uU]+[mM]+|[uU]+[hH]+|[eE]r+m*|[aA]h+|[hH]m+|[mM]+h?m+)(?![\w'])[,.…]*\s*"
)
SET_OFF = re.compile(r",\s*(?:you know|i mean|like)\s*(?=[,.!?])", re.I)
_CLAUSE_BEFORE = r"(?<!\bdo )(?<!\bdid )(?<!\bdon't )(?<!\bif )(?<!\bas )(?<!\bwould )(?<!\bwhat )"
YOU_KNOW = re.compile(
    _CLAUSE_BEFORE + r"\byou know\b,?\s+(?!(?:what|how|that|who|where|when|why|whether|him|her|"
    r"it|them|me|us|you|this|about|of|anything|nothing|everything|someone|anyone|the|a|an|my|"
    r"your|his|our|their)\b)",
    re.I,
)
I_MEAN = re.compile(
    r"(?<!\bwhat )(?<!\bdo )\bi mean\b,?\s+(?=(?:if|when|we|you|they|he|she|there|so|because|"
    r"but|and|it's|that's)\b)",
    re.I,
)
LIKE = re.compile(
    r"\b(is|are|was|were|be|been|it's|that's|they're|we're|you're) like,?\s+(?=(?:really|"
    r"a bit|a little|so|very|totally|super|kind of|sort of|pretty|quite|too|just|literally|"
    r"way|actually)\b)",
    re.I,
)
LEADING = re.compile(
    r"^(?:(?:(?:okay|ok|alright|all right)[,]?\s+so|so)(?:,?\s+like(?!\s+(?:i|we|you|he|she|"
    r"they)\s+(?:said|say|told|mentioned)\b))?|like(?=,))\b[,]?\s+(?=\w)",
    re.I,
)

MARKERS = (
    ("no", "wait"), ("wait", "no"), ("no", "actually"), ("actually", "no"), ("no", "sorry"),
    ("sorry", "no"), ("or", "rather"), ("scratch", "that"), ("i", "mean"), ("sorry",),
    ("actually",), ("no",), ("wait",),
)  # fmt: skip
EXPLICIT = {("no", "wait"), ("wait", "no"), ("no", "actually"), ("actually", "no"),
            ("no", "sorry"), ("sorry", "no"), ("or", "rather"), ("scratch", "that")}  # fmt: skip

WEEKDAYS = {"monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
            "today", "tomorrow", "yesterday", "tonight"}  # fmt: skip
MONTHS = {"january", "february", "march", "april", "may", "june", "july", "august",
          "september", "october", "november", "december"}  # fmt: skip
NUMBERS = {"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
           "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
           "eighteen", "nineteen", "twenty", "thirty", "forty", "fifty", "sixty", "seventy",
           "eighty", "ninety", "hundred", "thousand", "million", "half", "noon", "midnight",
           "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth",
           "ninth", "tenth"}  # fmt: skip
LOOKBACK = 5


def _key(token: str) -> str:
    return re.sub(r"[^\w']", "", token.lower())


def _kind(word: str) -> str | None:
    if word in WEEKDAYS:
        return "day"
    if word in MONTHS:
        return "month"
    if word in NUMBERS or word.rstrip("stndrh").isdigit() or re.fullmatch(r"\d+[:.]\d+", word):
        return "number"
    return None


def _replaced(before: list[str], repair: list[str], explicit: bool, set_off: bool) -> int:
    """How many words before the marker the repair replaces (0: not a self-correction)."""
    if not before or not repair:
        return 0
    tail = before[-LOOKBACK:]
    if (explicit or set_off) and repair[0] in tail and _kind(repair[0]) is None:
        # "to Tom, sorry, to Tim": the repair starts again from a word just said.
        return len(tail) - max(i for i, w in enumerate(tail) if w == repair[0])
    kind = _kind(before[-1])
    if kind is not None and kind == _kind(repair[0]):
        return 1
    if (
        len(repair) > 1
        and len(before) > 1
        and repair[1] == before[-1]
        and _kind(repair[0]) is not None
        and _kind(repair[0]) == _kind(before[-2])
    ):
        return 2  # "forty dollars, sorry, fourteen dollars"
    if explicit and set_off:
        return 1
    return 0


def _corrections(text: str) -> str:
    tokens = text.split()
    keys = [_key(t) for t in tokens]
    out: list[str] = []
    i = 0
    while i < len(tokens):
        for marker in MARKERS:
            n = len(marker)
            if tuple(keys[i : i + n]) != marker:
                continue
            # Only the current sentence can be corrected.
            ends = [j for j, t in enumerate(out) if t.endswith((".", "?", "!"))]
            before = [_key(t) for t in out[(ends[-1] + 1 if ends else 0) :]]
            repair = keys[i + n : i + n + 3]
            set_off = bool(out) and (out[-1].endswith((",", "-", "—")) or
                                     tokens[i + n - 1].endswith((",", "-", "—")))  # fmt: skip
            drop = _replaced(before, repair, marker in EXPLICIT, set_off)
            if drop:
                del out[len(out) - drop :]
                i += n
                break
        else:
            out.append(tokens[i])
            i += 1
    return " ".join(out)


def _clean_line(line: str) -> str:
    for pattern in (HESITATION, SET_OFF, YOU_KNOW, I_MEAN):
        line = pattern.sub("", line)
    line = LIKE.sub(r"\1 ", line)
    line = LEADING.sub("", _corrections(line))
    line = re.sub(r"\s+([,.!?])", r"\1", line)
    line = re.sub(r",(?=[,.!?])", "", line).strip(" ,")
    return line[:1].upper() + line[1:] if line[:1].islower() else line


def remove_disfluencies(text: str) -> str:
    """`text` without hesitations, set-off fillers and evident self-corrections (the text
    itself when nothing would be left)."""
    return "\n".join(_clean_line(line) for line in text.splitlines()).strip() or text.strip()
