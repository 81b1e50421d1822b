"""A user's own dictation: the words they say often, and how they want them written.

Both travel with every recording (`RecordingOptions.vocabulary`, `.replacements`): the
gateway resolves them from the user's settings when it accepts a recording, so the
audio service and the workers never look a user up, and one user's words never reach
another's recording. The worker turns `vocabulary` into the recogniser's prompt and
applies `replacements` to the recognised text before any agent sees it (the raw text is
kept beside it).
"""

from __future__ import annotations

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
    around it; `written` is inserted as given (it may be empty, or contain newlines)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    spoken: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_SPOKEN_CHARS)
    ]
    written: str = Field(max_length=MAX_WRITTEN_CHARS)


def apply_replacements(text: str, replacements: Iterable[Replacement]) -> str:
    """`text` with every replacement applied, longest spoken phrase first (so "new
    paragraph" wins over "new")."""
    for rule in sorted(replacements, key=lambda r: len(r.spoken), reverse=True):
        body = r"[\s,]+".join(re.escape(w) for w in rule.spoken.split())
        text = re.sub(rf"(?<!\w){body}(?!\w)", rule.written.replace("\\", r"\\"), text, flags=re.I)
    return text
