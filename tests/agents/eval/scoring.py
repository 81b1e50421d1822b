"""Score an agent's answer against an eval case (`cases.yaml`): plain string checks, no model.

Each case yields named checks, each passed or not; a case passes when all of its checks do.
The general checks apply to every case: an answer at all, stopped by itself (fewer output
tokens than the cap), no line said twice, no leftover `<transcript>` tag.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

CASES = Path(__file__).with_name("cases.yaml")
BULLET = re.compile(r"^\s*(?:[-*•]\s+|\d+[.)]\s+)")


@dataclass(frozen=True)
class Case:
    id: str
    target: str
    input: str
    all: list[str | list[str]] = field(default_factory=list)
    none: list[str] = field(default_factory=list)
    expected: str | None = None
    min_ratio: float = 0.85
    lines: tuple[int, int] | None = None
    bullets: int | None = None
    no_bullets: bool = False
    needs_tools: bool = False


def load_cases(path: Path = CASES) -> list[Case]:
    raw: list[dict[str, Any]] = yaml.safe_load(path.read_text())
    cases = []
    for item in raw:
        lines = item.pop("lines", None)
        item["all"] = [[str(o) for o in e] if isinstance(e, list) else str(e)
                       for e in item.get("all", [])]  # fmt: skip
        item["none"] = [str(word) for word in item.get("none", [])]
        cases.append(Case(**item, lines=tuple(lines) if lines else None))
    ids = [c.id for c in cases]
    assert len(ids) == len(set(ids)), "duplicate case ids"
    return cases


def _norm(text: str) -> str:
    """Lower case, curly quotes straightened, runs of spaces as one."""
    text = text.lower().replace("\u2019", "'").replace("\u201c", '"').replace("\u201d", '"')
    return re.sub(r"\s+", " ", text)


def _words(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9']+", _norm(text)))


def similarity(a: str, b: str) -> float:
    """How close two texts are, on their words (punctuation and case are ignored here:
    casing and punctuation get their own check)."""
    return difflib.SequenceMatcher(None, _words(a), _words(b)).ratio()


def repeated_line(text: str) -> str | None:
    """The first non-trivial line that occurs twice (a model stuck in a loop)."""
    seen: set[str] = set()
    for line in text.splitlines():
        key = _norm(line).strip(" -*•")
        if len(key) < 8:
            continue
        if key in seen:
            return line
        seen.add(key)
    return None


@dataclass
class Scored:
    case: str
    target: str
    checks: dict[str, bool]
    output: str
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(self.checks.values())

    @property
    def score(self) -> float:
        return sum(self.checks.values()) / len(self.checks) if self.checks else 0.0


def score(case: Case, output: str, stopped_by_itself: bool) -> Scored:
    """`stopped_by_itself`: every model call of the run ended before its token cap."""
    text = _norm(output)
    checks: dict[str, bool] = {}
    notes: list[str] = []
    checks["answered"] = bool(output.strip())
    checks["stopped_by_itself"] = stopped_by_itself
    loop = repeated_line(output)
    checks["no_repeated_line"] = loop is None
    if loop:
        notes.append(f"repeated: {loop[:60]!r}")
    checks["no_tags"] = "transcript>" not in text
    for entry in case.all:
        options = entry if isinstance(entry, list) else [entry]
        checks[f"has:{options[0]}"] = any(_norm(o) in text for o in options)
    for word in case.none:
        checks[f"not:{word.strip()}"] = _norm(word) not in f" {text} "
    if case.expected is not None:
        ratio = similarity(output, case.expected)
        checks["close_to_expected"] = ratio >= case.min_ratio
        notes.append(f"similarity {ratio:.2f}")
        checks["starts_with_capital"] = output.strip()[:1].isupper()
        checks["ends_with_punctuation"] = output.strip()[-1:] in ".?!"
    lines = [line for line in output.splitlines() if line.strip()]
    if case.lines is not None:
        low, high = case.lines
        checks[f"lines:{low}-{high}"] = low <= len(lines) <= high
    bullets = sum(bool(BULLET.match(line)) for line in lines)
    if case.bullets is not None:
        checks[f"bullets>={case.bullets}"] = bullets >= case.bullets
    if case.no_bullets:
        checks["no_bullets"] = bullets == 0
    return Scored(case.id, case.target, checks, output, notes)
