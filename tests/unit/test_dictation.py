"""`apply_replacements` on text as a recogniser writes it: its capitals, its punctuation
around a spoken command, phrases inside longer words, and user text that looks like a
pattern."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from whisp_shared.dictation import Replacement, apply_replacements


def rules(*pairs: tuple[str, str]) -> list[Replacement]:
    return [Replacement(spoken=spoken, written=written) for spoken, written in pairs]


PARAGRAPH = rules(("new paragraph", "\n\n"), ("new line", "\n"))


@pytest.mark.parametrize(
    ("heard", "written"),
    [
        ("That is the end. New paragraph. Next we go.", "That is the end.\n\nNext we go."),
        ("That is the end, new paragraph, next we go", "That is the end\n\nnext we go"),
        ("That is the end new paragraph next we go", "That is the end\n\nnext we go"),
        ("Milk. New line. Eggs. New line. Bread.", "Milk.\nEggs.\nBread."),
        ("New paragraph. Dear Anna,", "\n\nDear Anna,"),
        ("The end. New, paragraph! Next.", "The end.\n\nNext."),
    ],
)
def test_a_layout_command_takes_its_own_punctuation_and_spaces(heard: str, written: str) -> None:
    assert apply_replacements(heard, PARAGRAPH) == written


@pytest.mark.parametrize(
    "heard", ["I pushed it to github.", "I pushed it to GitHub.", "I pushed it to GITHUB."]
)
def test_matches_ignore_case_and_the_written_casing_wins(heard: str) -> None:
    assert apply_replacements(heard, rules(("github", "GitHub"))) == "I pushed it to GitHub."


def test_the_recognisers_punctuation_after_a_word_stays() -> None:
    product = rules(("github", "GitHub"), ("k8s", "Kubernetes"))
    assert apply_replacements("Github, k8s? Yes.", product) == "GitHub, Kubernetes? Yes."


def test_abbreviations_both_ways() -> None:
    short = rules(("as soon as possible", "ASAP"), ("btw", "by the way"))
    assert apply_replacements("Call me as soon as possible.", short) == "Call me ASAP."
    assert apply_replacements("Call me as soon, as possible.", short) == "Call me ASAP."
    assert apply_replacements("Btw, the call moved.", short) == "By the way, the call moved."
    assert apply_replacements("It moved, btw.", short) == "It moved, by the way."


def test_a_written_name_with_capitals_is_not_recapitalised() -> None:
    assert apply_replacements("Ios is late.", rules(("ios", "iOS"))) == "iOS is late."


def test_written_punctuation_replaces_the_recognisers() -> None:
    spoken = rules(("full stop", "."), ("comma", ","))
    assert apply_replacements("The end full stop. Next", spoken) == "The end. Next"
    assert apply_replacements("The end, full stop, next", spoken) == "The end. next"
    assert apply_replacements("milk comma eggs", spoken) == "milk, eggs"


def test_an_empty_written_form_removes_the_phrase_and_its_comma() -> None:
    filler = rules(("um", ""))
    assert apply_replacements("So, um, I think so.", filler) == "So, I think so."
    assert apply_replacements("Um, I think so.", filler) == "I think so."
    assert apply_replacements("I think so, um.", filler) == "I think so."
    assert apply_replacements("So um, I think so.", filler) == "So, I think so."


def test_the_longest_phrase_wins_and_output_is_never_replaced_again() -> None:
    nested = rules(("new", "NEW"), ("new york", "New York City"), ("city", "town"))
    assert apply_replacements("I flew to new york.", nested) == "I flew to New York City."
    assert apply_replacements("A new city.", nested) == "A NEW town."


def test_never_inside_another_word() -> None:
    words = rules(("cat", "dog"), ("new", "old"))
    assert apply_replacements("The category of newer cats.", words) == "The category of newer cats."
    assert apply_replacements("Renew the cat-flap.", words) == "Renew the dog-flap."


def test_user_text_is_never_a_pattern() -> None:
    tricky = rules(("a.*b", r"\1 \g<0>"), ("c++", "C++"), ("(x)", "why"))
    assert apply_replacements("aXXb a.*b", tricky) == r"aXXb \1 \g<0>"
    assert apply_replacements("I write c++ daily.", tricky) == "I write C++ daily."
    assert apply_replacements("See (x) here.", tricky) == "See why here."


def test_nothing_to_replace_leaves_the_text_alone() -> None:
    assert apply_replacements("Hello there.", []) == "Hello there."
    assert apply_replacements("", PARAGRAPH) == ""
    assert apply_replacements("Hello there.", PARAGRAPH) == "Hello there."


def test_a_replacement_is_bounded_and_strict() -> None:
    with pytest.raises(ValidationError):
        Replacement(spoken=" ", written="x")
    with pytest.raises(ValidationError):
        Replacement(spoken="x" * 101, written="x")
    with pytest.raises(ValidationError):
        Replacement.model_validate({"spoken": "x", "written": "y", "regex": True})
