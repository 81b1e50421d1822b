"""A held press's words (`whisp_cli.desk.live`): the socket's deltas and the event feed's
partials merged into settled + tentative text, partials routed to the right press, and
how the live line draws them."""

from __future__ import annotations

import io

from rich.console import Console

from whisp_cli.desk.live import LiveText, PartialRouter, Words
from whisp_cli.desk.turn import Phase, Turn
from whisp_cli.record import view
from whisp_shared.views import TranscriptPartial


def partial(rid: str, text: str, stable: int, sequence: int) -> TranscriptPartial:
    return TranscriptPartial(
        recording_id=rid, user_id="local", text=text, stable_chars=stable, sequence=sequence
    )


def test_partials_give_settled_and_tentative_words() -> None:
    live = LiveText()
    assert live.claim("r1")
    live.partial(partial("r1", " Send a message", 5, 1))
    assert live.words() == Words("Send", " a message")
    live.partial(partial("r1", " Send the", 0, 0))  # older: dropped
    assert live.words() == Words("Send", " a message")
    live.partial(partial("r1", " Send a message to Sarah ", 15, 2))
    assert live.words() == Words("Send a message", " to Sarah")
    assert live.first_words_at is not None


def test_deltas_alone_are_settled_words() -> None:
    live = LiveText()
    live.delta("r1", " Send a")
    live.delta("r1", " message")
    assert live.words() == Words("Send a message")
    assert live.item_id == "r1"


def test_the_socket_ahead_of_the_feed_wins() -> None:
    live = LiveText()
    live.identify("r1")
    live.partial(partial("r1", " Send a message", 5, 1))
    live.delta("r1", " Send a message to")
    assert live.words() == Words("Send a message to")


def test_a_wrong_claim_is_corrected_by_the_socket() -> None:
    live = LiveText()
    live.claim("someone-elses")
    live.partial(partial("someone-elses", " Buy milk", 4, 0))
    live.identify("mine")
    assert live.words() == Words()
    live.partial(partial("someone-elses", " Buy milk and eggs", 9, 1))
    assert live.words() == Words()
    live.partial(partial("mine", " Hello", 0, 0))
    assert live.words() == Words("", "Hello")


def test_the_router_claims_unknown_recordings_for_the_newest_open_press() -> None:
    router = PartialRouter()
    first, second = LiveText(), LiveText()
    router.add(first)
    first.identify("r1")
    router.add(second)
    router.retire("uploaded")
    router(partial("uploaded", " not ours", 0, 0))
    router(partial("r1", " one", 4, 0))
    router(partial("r2", " two", 0, 0))
    assert first.words() == Words("one") and second.words() == Words("", "two")
    assert second.claimed == "r2"
    router.remove(first)
    third = LiveText()
    router.add(third)
    router(partial("r1", " one again", 0, 1))  # a finished press's recording: never claimed
    assert third.recording_id is None


def render(renderable: object) -> str:
    console = Console(width=100, file=io.StringIO(), record=True)
    console.print(renderable)
    return console.export_text()


def test_the_live_line_draws_tentative_words_dim() -> None:
    line = view.hearing_line(Words("Send a message", " to Sarah"))
    assert line is not None and line.plain == "  » Send a message to Sarah"
    dim = [line.plain[s.start : s.end] for s in line.spans if "dim" in str(s.style)]
    assert dim == [" to Sarah"]
    assert view.hearing_line(None) is None
    nothing = view.hearing_line(Words())
    assert nothing is not None and "listening" in nothing.plain


def test_a_streamed_turn_shows_its_words_until_the_final() -> None:
    class Press:
        def words(self) -> Words:
            return Words("Send a", " message")

    turn = Turn(number=3, duration_s=4.0, stopped_at=0.0, live=Press())  # type: ignore[arg-type]
    assert turn.phase is Phase.COMMITTING
    assert "#3 Send a message" in render(view.pending_line(turn))
    turn.notice = "streaming failed (x); uploading the clip instead"
    assert "streaming failed" in render(view.pending_line(turn))
    turn.transcript = "Send a message to Sarah."
    shown = render(view.finished(turn)).splitlines()
    assert shown[0] == "#3 Send a message to Sarah."
    assert shown[1].strip().startswith("note: streaming failed")
