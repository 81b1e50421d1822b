"""An agent's answer while it is written (`whisp_cli.record.answers`): the event feed's
answer deltas built by AnswerDelta's rules (a new run starts over, stale pieces are dropped,
a new part replaces the text), and how `whisp record` draws it under its turn."""

from __future__ import annotations

from tests.cli.test_live import render
from whisp_cli.desk.turn import Phase, Turn
from whisp_cli.record import view
from whisp_cli.record.answers import AnswerBoard
from whisp_shared.views import AnswerDelta


def piece(seq: int, text: str, run: str = "run-1", part: int = 0, rid: str = "r1") -> AnswerDelta:
    return AnswerDelta(recording_id=rid, user_id="local", agent_id="assistant", delta=text,
                       run_id=run, sequence=seq, part=part)  # fmt: skip


def text_of(board: AnswerBoard, rid: str = "r1") -> str | None:
    answer = board.get(rid)
    return None if answer is None else answer.text


def test_pieces_append_in_order_and_repeats_are_dropped() -> None:
    board = AnswerBoard()
    assert board.get("r1") is None
    for delta in [piece(0, "Dinner"), piece(1, " at eight"), piece(1, " at eight"),
                  piece(0, "Dinner"), piece(2, " works.")]:  # fmt: skip
        board(delta)
    assert text_of(board) == "Dinner at eight works."
    assert board.get("r2") is None


def test_a_new_run_starts_over_and_the_dropped_run_stays_dropped() -> None:
    board = AnswerBoard()
    board(piece(0, "first try"))
    board(piece(1, " goes on"))
    board(piece(0, "Second", run="run-2"))
    assert text_of(board) == "Second"
    board(piece(2, " late piece of the first", run="run-1"))  # a slow, abandoned worker
    board(piece(1, " try.", run="run-2"))
    assert text_of(board) == "Second try."


def test_a_new_part_replaces_the_text() -> None:
    board = AnswerBoard()
    board(piece(0, "Let me check."))
    board(piece(1, "Summary: ", part=1))
    board(piece(2, "all good.", part=1))
    board(piece(3, "stale part", part=0))
    assert text_of(board) == "Summary: all good."
    board.forget("r1")
    assert board.get("r1") is None


def test_a_turn_waiting_for_its_agent_shows_the_answer_so_far() -> None:
    board = AnswerBoard()
    turn = Turn(number=1, duration_s=3.0, stopped_at=0.0, agent_id="assistant")
    turn.phase, turn.transcript, turn.recording_id = Phase.THINKING, "Dinner at eight?", "r1"
    assert "assistant is thinking" in render(view.pending_line(turn, board.get("r1")))
    board(piece(0, " Dinner at"))
    shown = render(view.pending_line(turn, board.get("r1"))).splitlines()
    assert shown == ["#1 Dinner at eight?", f"   assistant: Dinner at{view.WRITING}"]
    turn.answer = "Dinner at eight works."
    assert render(view.finished(turn)).splitlines()[1] == "   assistant: Dinner at eight works."
