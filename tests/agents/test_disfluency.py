"""Rule-based disfluency removal: what goes, and (as important) what must stay."""

from __future__ import annotations

import pytest

from whisp_agent.disfluency import remove_disfluencies


@pytest.mark.parametrize(
    ("spoken", "written"),
    [
        ("um so I think we should uh move it to Tuesday, no wait, Wednesday at three",
         "I think we should move it to Wednesday at three"),
        ("the total is forty dollars sorry fourteen dollars", "The total is fourteen dollars"),
        ("We need three no actually four chairs", "We need four chairs"),
        ("send it to Tom, sorry, to Tim", "Send it to Tim"),
        ("It's in March, I mean April.", "It's in April."),
        ("Um, so the meeting is on Tuesday, no, wait, Wednesday.", "The meeting is on Wednesday."),
        ("It was great, you know, really great.", "It was great, really great."),
        ("the design is you know pretty good", "The design is pretty good"),
        ("after that I mean if there is time", "After that if there is time"),
        ("Hmm. Erm, okay.", "Okay."),
        ("so like the colors are like a bit too bright", "The colors are a bit too bright"),
        ("It was like so cool.", "It was so cool."),
        ("Like, I think so.", "I think so."),
        ("So like I said, it works.", "Like I said, it works."),  # "like I said" stays
    ],
)  # fmt: skip
def test_disfluencies_go(spoken: str, written: str) -> None:
    assert remove_disfluencies(spoken) == written


@pytest.mark.parametrize(
    "kept",
    [
        "I went to the shop. I'm sorry to hear that.",
        "There is no wait time.",
        "No one knows. Took him to the ER.",
        "Do you know what I mean?",
        "You know the way home.",
        "I mean it.",
        "I like the new design.",
        "It is like a dream.",
        "I like really spicy food.",
        "If you know him, call.",
        "Call me back tomorrow no wait on Friday",  # no evidence: the model decides
    ],
)
def test_what_only_looks_like_one_stays(kept: str) -> None:
    assert remove_disfluencies(kept) == kept


def test_nothing_left_returns_the_input() -> None:
    assert remove_disfluencies("um uh") == "um uh"
