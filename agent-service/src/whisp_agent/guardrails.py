"""Input guardrails as pure functions: a spec and a text in, a reason out (None = pass).

They are cheap, deterministic checks that run before the model is called, so a trip costs no
tokens; the SDK wiring (`InputGuardrail`, blocking, not parallel) lives in `build.py`.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from whisp_agent.spec import GuardrailSpec

Rule = Callable[[GuardrailSpec, str], str | None]


def _max_chars(spec: GuardrailSpec, text: str) -> str | None:
    limit = spec.max_chars or 0
    if len(text) > limit:
        return f"input is {len(text)} characters; this agent takes at most {limit}"
    return None


def _blocked_terms(spec: GuardrailSpec, text: str) -> str | None:
    for term in spec.terms:
        if re.search(rf"\b{re.escape(term)}\b", text, flags=re.IGNORECASE):
            return f"input mentions a blocked term ({term!r})"
    return None


RULES: dict[str, Rule] = {"max_chars": _max_chars, "blocked_terms": _blocked_terms}


def spec_problems(spec: GuardrailSpec) -> list[tuple[str, str]]:
    """(field, message) for a guardrail that cannot work as written."""
    if spec.type not in RULES:
        return [("type", f"unknown guardrail type {spec.type!r} (known: {', '.join(RULES)})")]
    if spec.type == "max_chars" and spec.max_chars is None:
        return [("max_chars", "a max_chars guardrail needs max_chars")]
    if spec.type == "blocked_terms" and not spec.terms:
        return [("terms", "a blocked_terms guardrail needs a non-empty terms list")]
    return []


def check(spec: GuardrailSpec, text: str) -> str | None:
    reason = RULES[spec.type](spec, text)
    if reason is not None and spec.message:
        return spec.message
    return reason
