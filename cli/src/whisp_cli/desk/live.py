"""The words of a press while it is held: which recording is ours, and what it says so far.

Two sources feed one `LiveText`: the socket's `…transcription.delta` pieces (settled text,
authoritative about the item id) and the `transcript.partial` events on /api/events (all
the words so far, the first `stable_chars` settled: the only source of the tentative tail).
The partials name a recording id, which the socket tells us only with its first delta or
at commit; until then the first recording id no press of ours knows that sends a partial
while a press is streaming is taken to be it (as the web page does), and a delta or the
commit naming another corrects that.

`LivePress` is one streamed press as the desk tools drive it: the capture's tap feeds it,
`commit()` ends it with the recording id, and its `text` is what the live line draws.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from whisp_cli.desk.realtime import RealtimeStream, StreamBroken
from whisp_shared.options import RecordingOptions
from whisp_shared.views import TranscriptPartial

__all__ = ["LivePress", "LiveText", "PartialRouter", "StreamBroken", "Words"]


@dataclass(frozen=True)
class Words:
    """A press's text at one moment: `settled` will not change, `tentative` may."""

    settled: str = ""
    tentative: str = ""

    @property
    def text(self) -> str:
        return self.settled + self.tentative

    def __bool__(self) -> bool:
        return bool(self.text.strip())

    @classmethod
    def of(cls, settled: str, tentative: str = "") -> Words:
        """Trimmed as a line shows them: no space before the first word or after the last."""
        settled = settled.lstrip()
        tentative = tentative.lstrip() if not settled else tentative
        if tentative.strip():
            return cls(settled, tentative.rstrip())
        return cls(settled.rstrip())


class LiveText:
    """Thread-safe: the socket's reader and the event feed write, the UI reads `words()`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.item_id: str | None = None
        """The recording id the socket named (authoritative)."""
        self.claimed: str | None = None
        """The recording id guessed from the first unknown partial (until the socket says)."""
        self._deltas = ""
        self._partial: TranscriptPartial | None = None
        self.first_words_at: float | None = None
        """time.monotonic() when there first were words to show."""

    @property
    def recording_id(self) -> str | None:
        return self.item_id or self.claimed

    def identify(self, item_id: str) -> None:
        """The socket named the item: partials of a wrongly claimed recording are dropped."""
        with self._lock:
            if self.item_id is not None:
                return
            self.item_id = item_id
            if self.claimed != item_id and self._partial is not None:
                self._partial = None
            self.claimed = None

    def delta(self, item_id: str, piece: str) -> None:
        self.identify(item_id)
        with self._lock:
            if item_id == self.item_id:
                self._deltas += piece
                self._touched()

    def claim(self, recording_id: str) -> bool:
        """Take `recording_id` as this press's if it has none yet (True: it is ours now)."""
        with self._lock:
            if self.item_id is None and self.claimed is None:
                self.claimed = recording_id
            return recording_id in (self.item_id, self.claimed)

    def partial(self, event: TranscriptPartial) -> None:
        """A partial of this press's recording (the router checked the id)."""
        with self._lock:
            if event.recording_id not in (self.item_id, self.claimed):
                return
            if self._partial is not None and event.sequence <= self._partial.sequence:
                return
            self._partial = event
            self._touched()

    def words(self) -> Words:
        with self._lock:
            partial, deltas = self._partial, self._deltas
        if partial is None:
            return Words.of(deltas)
        settled = partial.text[: partial.stable_chars]
        if len(deltas) > len(settled):  # the socket is ahead of the event feed
            return Words.of(deltas)
        return Words.of(settled, partial.text[partial.stable_chars :])

    def _touched(self) -> None:
        if self.first_words_at is None and (self._deltas.strip() or self._partial_text()):
            self.first_words_at = time.monotonic()

    def _partial_text(self) -> str:
        return self._partial.text.strip() if self._partial is not None else ""


class PartialRouter:
    """The event feed's partials to the press they belong to.

    A partial for a recording a press has (named or claimed) goes to it. One for a recording
    no press of ours knows is claimed by the newest streaming press still without an id;
    recordings of finished presses and of uploads are `retire`d, never claimed again.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._texts: list[LiveText] = []
        self._retired: set[str] = set()

    def add(self, text: LiveText) -> None:
        with self._lock:
            self._texts.append(text)

    def remove(self, text: LiveText) -> None:
        with self._lock:
            if text in self._texts:
                self._texts.remove(text)
            if text.recording_id:
                self._retired.add(text.recording_id)

    def retire(self, recording_id: str) -> None:
        with self._lock:
            self._retired.add(recording_id)

    def __call__(self, event: TranscriptPartial) -> None:
        """On the event feed's thread."""
        rid = event.recording_id
        with self._lock:
            if rid in self._retired:
                return
            texts = list(self._texts)
        owner = next((t for t in texts if t.recording_id == rid), None)
        if owner is None:
            open_ones = [t for t in texts if t.recording_id is None]
            if not open_ones or not open_ones[-1].claim(rid):
                return
            owner = open_ones[-1]
        owner.partial(event)


class LivePress:
    """One press streamed: the capture's tap (`begin`, `feed`), then `commit` or `cancel`."""

    def __init__(self, stream: RealtimeStream, text: LiveText, router: PartialRouter) -> None:
        self.stream = stream
        self.text = text
        self.router = router
        self.pressed_at: float | None = None
        router.add(text)

    @classmethod
    def open(
        cls,
        router: PartialRouter,
        url: str,
        token: str | None,
        options: RecordingOptions,
    ) -> LivePress:
        """A press's stream to `url`; nothing connects before `begin`."""
        text = LiveText()
        stream = RealtimeStream(url, token, options, on_delta=text.delta, on_item=text.identify)
        return cls(stream, text, router)

    # --- the capture's tap (AudioTap) ----------------------------------------------------

    def begin(self, rate: int) -> None:
        self.pressed_at = time.monotonic()
        self.stream.begin(rate)

    def feed(self, block: npt.NDArray[np.float32]) -> None:
        self.stream.feed(block)

    # --- the end of the press ------------------------------------------------------------

    @property
    def broken(self) -> str | None:
        """Why the stream broke (None while it is fine)."""
        return self.stream.error if self.stream.broken.is_set() else None

    def words(self) -> Words:
        return self.text.words()

    def commit(self, timeout_s: float) -> str:
        """The recording id of the press (raises StreamBroken: upload it instead)."""
        return self.stream.commit(timeout_s)

    def cancel(self, wait_s: float = 0.0) -> None:
        """Dropped: the server forgets the item (waits up to `wait_s` for that to be sent)."""
        self.stream.cancel(wait_s)
        self.finish()

    def finish(self) -> None:
        """Its text is no longer drawn: stop routing partials to it."""
        self.router.remove(self.text)

    def first_words_ms(self) -> float | None:
        """Press -> the first words there were to show, in milliseconds."""
        first, pressed = self.text.first_words_at, self.pressed_at
        if first is None or pressed is None:
            return None
        return round((first - pressed) * 1000, 1)
