"""Streaming push-to-talk in a real browser: words under the button while it is held, the
final transcript the moment it is let go, and the upload path whenever the stream cannot
carry the press.

The whole stack runs as `whisp up` (Redis, audio, one tiny.en worker, agents, gateway; the
local LLM is switched off: no answer is looked at here, and the model would only compete
for the 2 cores). A user is created first, so the page signs in with a token and the
Realtime socket is authenticated by the session cookie alone. Debian's Chromium, driven by
Playwright, plays a spoken sentence (espeak-ng) as its microphone.

What the page did is read from the page itself (a probe installed before its scripts:
press, first partial, release and final card times on the page's own clock) and from the
network (the socket's frames; upload requests).

Screenshots land in tests/e2e/artifacts/streaming/ (gitignored).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.browser_support import (
    ARTIFACTS,
    NO_WEBSOCKET,
    Stack,
    add_user,
    chromium,
    hold,
    spoken_wav,
)
from tests.support.processes import WhispUp
from tests.support.speech import Utterance, duration_s, word_error_rate
from tests.support.tools import needs_tools, require_tool

pytestmark = [
    pytest.mark.e2e,
    needs_tools("chromium", why="Debian's chromium, driven by Playwright"),
]

SHOTS = ARTIFACTS / "streaming"
CLIP_ID = "late-for-dinner"  # 14 words, 4.6 s
LEAD_S = 0.5  # silence before the speech: the fake device starts at getUserMedia
HOLD_EXTRA_S = 0.7  # keep holding this long after the clip has played out
# As in test_browser.py: Chromium's capture (echo cancellation, noise suppression, AGC)
# costs tiny.en a word or two at the start; 0.25 is 3 wrong words of 15.
MAX_WER = 0.25
MIN_PEAK = 0.05  # the page's meter (0..1 = -60..0 dBFS); a wrong WAV path leaves it at 0
TRANSCRIPT_TIMEOUT_MS = 60_000
BREAK_AFTER_APPENDS = 15  # the mid-press failure: ~1.5 s of audio, then the socket closes

REALTIME_PATH = "/v1/realtime?intent=transcription"

# Installed before the page's own scripts: times on the page's clock (performance.now), so
# Playwright's polling does not blur them.
PROBE = """
(() => {
  const probe = (window.__probe = {
    press: null, release: null, firstPartial: null, final: null, partials: [],
  });
  const check = () => {
    const line = document.getElementById("partial");
    if (probe.press !== null && probe.release === null && line && !line.hidden) {
      const text = line.textContent || "";
      const last = probe.partials[probe.partials.length - 1];
      if (/\\w/.test(text) && (!last || last.text !== text)) {
        if (probe.firstPartial === null) probe.firstPartial = performance.now();
        const settled = line.querySelector(".partial-settled");
        probe.partials.push({
          ms: Math.round(performance.now() - probe.press),
          text,
          settled: settled ? settled.textContent : "",
        });
      }
    }
    if (probe.release !== null && probe.final === null) {
      const done = document.querySelector(
        "#results .result[data-status=done], #results .result[data-status=empty]," +
          " #results .result[data-status=failed]",
      );
      if (done) probe.final = performance.now();
    }
  };
  // Where the time goes: the socket's and the event stream's own moments.
  const now = () => performance.now();
  const RealSocket = window.WebSocket;
  const send = RealSocket.prototype.send;
  RealSocket.prototype.send = function (data) {
    const text = String(data);
    if (text.includes('"input_audio_buffer.append"') && probe.firstAppend == null) {
      probe.firstAppend = now();
    }
    if (text.includes('"input_audio_buffer.commit"')) probe.commitSent = now();
    return send.call(this, data);
  };
  window.WebSocket = class extends RealSocket {
    constructor(...args) {
      super(...args);
      this.addEventListener("message", (message) => {
        const type = JSON.parse(message.data).type || "";
        if (type === "input_audio_buffer.committed") probe.committed = now();
        if (type.endsWith("transcription.delta") && probe.firstDelta == null) {
          probe.firstDelta = now();
        }
        if (type.endsWith("transcription.completed")) probe.completed = now();
      });
    }
  };
  const RealEvents = window.EventSource;
  window.EventSource = class extends RealEvents {
    constructor(...args) {
      super(...args);
      this.addEventListener("transcript.partial", (message) => {
        if (probe.press === null || probe.firstEventPartial != null) return;
        probe.firstEventPartial = now();
        probe.firstEventText = JSON.parse(message.data).text;
      });
      this.addEventListener("transcript.updated", (message) => {
        const t = JSON.parse(message.data).transcript;
        if (probe.release !== null && t.status !== "processing" && probe.finalEvent == null) {
          probe.finalEvent = now();
        }
      });
    }
  };
  addEventListener("pointerdown", () => { probe.press = performance.now(); }, true);
  addEventListener("pointerup", () => { probe.release = performance.now(); check(); }, true);
  new MutationObserver(check).observe(document, {
    subtree: true, childList: true, characterData: true, attributes: true,
  });
})();
"""

# The first socket drops in the middle of the press, as a network does.
DROP_MID_PRESS = f"""
(() => {{
  const Real = window.WebSocket;
  let opened = 0;
  class DroppingSocket extends Real {{
    constructor(...args) {{
      super(...args);
      this.number = ++opened;
      this.appends = 0;
    }}
    send(data) {{
      super.send(data);
      if (this.number !== 1 || !String(data).includes('"input_audio_buffer.append"')) return;
      this.appends += 1;
      if (this.appends === {BREAK_AFTER_APPENDS}) this.close(4000, "dropped by the test");
    }}
  }}
  window.WebSocket = DroppingSocket;
}})();
"""


# --- the stack, the microphone, the browser ----------------------------------------------


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("streaming-stack")
    data_dir, log_dir = root / "data", root / "logs"
    data_dir.mkdir()
    database_url = f"sqlite+aiosqlite:///{data_dir / 'gateway.db'}"  # where `whisp up` puts it
    token = add_user("stream-tester", database_url)
    up = WhispUp(
        data_dir,
        log_dir,
        workers=1,
        unset=("REDIS_URL", "DATABASE_URL"),
        env={"WHISP_AGENTS__LOCAL_LLM__ENABLED": "false"},
    )
    with up:
        yield Stack(f"{up.url}/", token, data_dir, up.banner)
    assert up.returncode == 0, up.output[-3000:]


@pytest.fixture(scope="module")
def spoken_clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Utterance, Path]:
    return spoken_wav(CLIP_ID, tmp_path_factory.mktemp("speech"), LEAD_S)


@pytest.fixture(scope="module")
def browser(spoken_clip: tuple[Utterance, Path]) -> Iterator[Any]:
    executable = require_tool("chromium", "Debian's chromium, driven by Playwright")
    _utterance, wav_path = spoken_clip
    with chromium(executable, wav_path) as browser:
        yield browser


# --- what the page did -------------------------------------------------------------------


@dataclass
class Traffic:
    """The page's sockets and uploads, and what it logged."""

    sockets: list[str] = field(default_factory=list)
    sent: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    received: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    uploads: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)

    def types(self, frames: list[tuple[int, dict[str, Any]]], socket: int = 0) -> list[str]:
        return [event.get("type", "") for n, event in frames if n == socket]

    def received_of(self, kind: str) -> list[dict[str, Any]]:
        return [event for _n, event in self.received if event.get("type") == kind]


def _watch(page: Any) -> Traffic:
    traffic = Traffic()

    def frames(into: list[tuple[int, dict[str, Any]]], number: int) -> Any:
        def add(payload: str | bytes) -> None:
            try:
                into.append((number, json.loads(payload)))
            except ValueError:
                into.append((number, {"type": "<not json>"}))

        return add

    def on_socket(ws: Any) -> None:
        if REALTIME_PATH not in ws.url:
            return
        number = len(traffic.sockets)
        traffic.sockets.append(ws.url)
        ws.on("framesent", frames(traffic.sent, number))
        ws.on("framereceived", frames(traffic.received, number))

    def on_request(request: Any) -> None:
        if request.method == "POST" and "/api/recordings" in request.url:
            traffic.uploads.append(request.url)

    page.on("websocket", on_socket)
    page.on("request", on_request)
    page.on("console", lambda m: traffic.console.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: traffic.console.append(f"pageerror: {e}"))
    return traffic


def _open_page(browser: Any, stack: Stack, *scripts: str) -> tuple[Any, Any, Traffic]:
    """A new context (the fake microphone plays the clip once per context), signed in."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    for script in (PROBE, *scripts):
        context.add_init_script(script)
    page = context.new_page()
    traffic = _watch(page)
    page.goto(stack.base_url)
    page.locator("#login-form").wait_for(state="visible", timeout=15_000)
    page.fill("#token", stack.token)
    page.press("#token", "Enter")
    page.locator("#connection[data-state=live]").wait_for(timeout=15_000)
    return context, page, traffic


def _probe(page: Any) -> dict[str, Any]:
    return dict(page.evaluate("window.__probe"))


SETTLED = "[data-status=done], [data-status=failed], [data-status=empty]"


def _final_card(page: Any) -> Any:
    card = page.locator("#results .result").first
    card.wait_for(timeout=10_000)
    card.and_(page.locator(SETTLED)).wait_for(timeout=TRANSCRIPT_TIMEOUT_MS)
    return card


def _stored(stack: Stack, recording_id: str) -> dict[str, int]:
    """The files the audio service keeps for a recording, with their sizes: an upload's
    `original.<ext>` (the file the browser sent) beside `audio.wav`; a live recording's PCM
    only as `audio.wav`."""
    folder = next(stack.data_dir.joinpath("audio").glob(f"*/{recording_id}"))
    return {path.name: path.stat().st_size for path in folder.iterdir()}


# --- the tests ---------------------------------------------------------------------------


def test_words_show_while_held_and_the_final_arrives_on_release(
    browser: Any, stack: Stack, spoken_clip: tuple[Utterance, Path]
) -> None:
    utterance, wav_path = spoken_clip
    SHOTS.mkdir(parents=True, exist_ok=True)
    context, page, traffic = _open_page(browser, stack)
    try:
        # Signed in, the page opened the socket by itself: the first press streams.
        page.locator("#ptt[data-stream=ready]").wait_for(timeout=15_000)
        assert page.input_value("#agent") == ""
        page.screenshot(path=SHOTS / "1-ready.png")

        hold_s = duration_s(wav_path) + HOLD_EXTRA_S
        seen: dict[str, Any] = {}

        def while_held() -> None:
            page.locator("#ptt[data-state=recording]").wait_for(timeout=10_000)
            # Words under the button before the release: the DOM, read while holding.
            words = page.locator("#partial").filter(has_text=re.compile(r"\w"))
            words.wait_for(timeout=(hold_s - 0.5) * 1000)
            seen.update(
                page.evaluate(
                    """() => ({
                        state: document.querySelector("#ptt").dataset.state,
                        text: document.querySelector("#partial").textContent,
                        visible: !document.querySelector("#partial").hidden,
                        cards: document.querySelectorAll("#results .result").length,
                    })"""
                )
            )
            page.screenshot(path=SHOTS / "2-first-words.png")
            page.wait_for_timeout(max(0.0, hold_s - 1.2 - (time.monotonic() - pressed)) * 1000)
            page.screenshot(path=SHOTS / "3-more-words.png")

        pressed = time.monotonic()
        hold(page, hold_s, touch=False, while_held=while_held)
        assert seen["state"] == "recording" and seen["visible"], seen
        assert re.search(r"\w", seen["text"]), seen
        assert seen["cards"] == 0, "a card appeared while the button was still held"
        # The level meter listens to the same microphone as the PCM tap.
        peak = float(page.get_attribute("#level", "data-peak") or 0)
        assert peak > MIN_PEAK, f"the meter heard nothing (peak {peak})"

        card = _final_card(page)
        page.screenshot(path=SHOTS / "4-final.png")
        probe = _probe(page)
        transcript = card.locator(".transcript").text_content() or ""
        wer = word_error_rate(utterance.text, transcript)
        first_ms = probe["firstPartial"] - probe["press"]
        final_ms = probe["final"] - probe["release"]
        print(f"\n[stream] first partial {first_ms:.0f} ms after the press ({LEAD_S} s lead-in)")
        for partial in probe["partials"]:
            print(f"[stream]   {partial['ms']:>5} ms  {partial['text']!r}")
        print(f"[stream] final card {final_ms:.0f} ms after the release")
        moments = ("firstAppend", "firstEventPartial", "firstDelta", "firstPartial")
        held = {k: round(probe[k] - probe["press"]) for k in moments if probe.get(k)}
        print(f"[stream] after the press (ms): {held}")
        print(f"[stream] the first partial event said {probe.get('firstEventText')!r}")
        released = ("commitSent", "committed", "finalEvent", "completed", "final")
        after = {k: round(probe[k] - probe["release"]) for k in released if probe.get(k)}
        print(f"[stream] after the release (ms): {after}")
        print(f"[stream] WER {wer:.3f}: {transcript!r}")
        assert card.get_attribute("data-status") == "done", (transcript, traffic.console)
        assert wer <= MAX_WER, (transcript, wer)

        # The partial line handed over to the card: one card, no partial left anywhere.
        assert page.locator("#results .result").count() == 1
        assert card.locator(".origin").count() == 0
        assert page.locator("#partial").is_hidden()
        assert card.locator(".partial").is_hidden()
        assert len(probe["partials"]) >= 1

        # It went over the socket, and nothing was uploaded.
        assert card.get_attribute("data-via") == "stream"
        assert traffic.uploads == []
        assert len(traffic.sockets) == 1, traffic.sockets
        sent = traffic.types(traffic.sent)
        assert sent[0] == "session.update", sent[:3]
        appends = sent.count("input_audio_buffer.append")
        assert appends >= duration_s(wav_path) * 9, appends  # ~10 chunks a second
        assert sent.count("input_audio_buffer.commit") == 1
        assert "input_audio_buffer.clear" not in sent
        update = next(event for _n, event in traffic.sent if event["type"] == "session.update")
        audio_in = update["session"]["audio"]["input"]
        assert audio_in["format"] == {"type": "audio/pcm", "rate": 16_000}
        assert audio_in["turn_detection"] is None
        committed = traffic.received_of("input_audio_buffer.committed")
        recording_id = card.get_attribute("data-recording-id")
        assert [c["item_id"] for c in committed] == [recording_id]
        assert not traffic.received_of("error"), traffic.received_of("error")
        deltas = traffic.received_of("conversation.item.input_audio_transcription.delta")
        print(f"[stream] {appends} appends, {len(deltas)} deltas over the socket")

        # What the audio service kept: the streamed PCM as WAV, no uploaded file.
        files = _stored(stack, recording_id or "")
        print(f"[stream] stored {files}")
        assert not [name for name in files if name.startswith("original.")], files
        assert files["audio.wav"] > duration_s(wav_path) * 16_000 * 2 * 0.9

        # The history has it, from the same snapshot.
        item = page.locator(f"#history .item[data-recording-id='{recording_id}']")
        item.wait_for(timeout=15_000)
        assert item.locator(".transcript").text_content() == transcript
        assert not [line for line in traffic.console if line.startswith("pageerror")]
    finally:
        context.close()


def test_the_chosen_agent_travels_on_the_socket(
    browser: Any, stack: Stack, spoken_clip: tuple[Utterance, Path]
) -> None:
    """The agent is part of the socket's URL: a new choice reopens it, and the streamed
    recording is stored as sent to that agent (its answer is not awaited: no model here)."""
    _utterance, wav_path = spoken_clip
    context, page, traffic = _open_page(browser, stack)
    try:
        page.locator("#ptt[data-stream=ready]").wait_for(timeout=15_000)
        page.locator("#agent option[value='agent:assistant']").wait_for(
            state="attached", timeout=15_000
        )
        page.select_option("#agent", "agent:assistant")  # the link reopens at once
        deadline = time.monotonic() + 15
        while not any("agent_id=assistant" in url for url in traffic.sockets):
            assert time.monotonic() < deadline, traffic.sockets
            page.wait_for_timeout(100)
        page.locator("#ptt[data-stream=ready]").wait_for(timeout=15_000)

        hold(page, duration_s(wav_path) + HOLD_EXTRA_S, touch=False, while_held=lambda: None)
        card = page.locator("#results .result").first
        card.wait_for(timeout=10_000)
        card.locator(".transcript").filter(has_text=re.compile(r"\w")).wait_for(
            timeout=TRANSCRIPT_TIMEOUT_MS
        )
        assert card.get_attribute("data-via") == "stream"
        assert traffic.uploads == []
        recording_id = card.get_attribute("data-recording-id")
        stored = page.request.get(f"{stack.base_url}api/transcripts/{recording_id}").json()
        assert stored["agent_id"] == "assistant", stored
        assert traffic.sockets[-1].endswith("agent_id=assistant"), traffic.sockets
    finally:
        context.close()


def test_without_a_websocket_the_press_is_uploaded(
    browser: Any, stack: Stack, spoken_clip: tuple[Utterance, Path]
) -> None:
    utterance, wav_path = spoken_clip
    context, page, traffic = _open_page(browser, stack, NO_WEBSOCKET)
    try:
        page.locator("#ptt[data-stream=closed]").wait_for(timeout=15_000)

        def while_held() -> None:
            page.locator("#ptt[data-state=recording]").wait_for(timeout=10_000)
            page.wait_for_timeout(2000)
            assert page.locator("#partial").is_hidden()  # no stream, no live words
            page.screenshot(path=SHOTS / "5-upload-fallback-recording.png")

        hold(page, duration_s(wav_path) + HOLD_EXTRA_S, touch=False, while_held=while_held)
        card = _final_card(page)
        transcript = card.locator(".transcript").text_content() or ""
        wer = word_error_rate(utterance.text, transcript)
        probe = _probe(page)
        print(f"\n[upload] final card {probe['final'] - probe['release']:.0f} ms after the release")
        print(f"[upload] WER {wer:.3f}: {transcript!r}")
        page.screenshot(path=SHOTS / "6-upload-fallback-final.png")
        assert card.get_attribute("data-status") == "done", (transcript, traffic.console)
        assert wer <= MAX_WER, (transcript, wer)
        assert card.get_attribute("data-via") == "upload"
        assert len(traffic.uploads) == 1
        assert traffic.sockets == []  # the browser never opened one
        assert page.locator("#results .result").count() == 1
        assert not page.locator("#error").text_content()  # a fallback, not an error
        files = _stored(stack, card.get_attribute("data-recording-id") or "")
        assert "original.webm" in files, files  # MediaRecorder's Opus in WebM, as before
    finally:
        context.close()


def test_a_socket_that_drops_mid_press_uploads_the_same_audio(
    browser: Any, stack: Stack, spoken_clip: tuple[Utterance, Path]
) -> None:
    utterance, wav_path = spoken_clip
    context, page, traffic = _open_page(browser, stack, DROP_MID_PRESS)
    try:
        page.locator("#ptt[data-stream=ready]").wait_for(timeout=15_000)

        def while_held() -> None:
            page.locator("#ptt[data-state=recording]").wait_for(timeout=10_000)
            page.locator("#partial[data-state=interrupted]").wait_for(timeout=10_000)
            page.locator("#error[data-code=stream_closed]").wait_for(timeout=5_000)
            page.screenshot(path=SHOTS / "7-dropped-mid-press.png")

        hold(page, duration_s(wav_path) + HOLD_EXTRA_S, touch=False, while_held=while_held)
        card = _final_card(page)
        transcript = card.locator(".transcript").text_content() or ""
        wer = word_error_rate(utterance.text, transcript)
        print(f"\n[dropped] WER {wer:.3f}: {transcript!r}")
        page.screenshot(path=SHOTS / "8-dropped-final.png")
        assert card.get_attribute("data-status") == "done", (transcript, traffic.console)
        assert wer <= MAX_WER, (transcript, wer)
        # The whole press (not just what followed the drop) went up as the page's own WAV.
        assert card.get_attribute("data-via") == "upload"
        assert len(traffic.uploads) == 1
        assert page.locator("#results .result").count() == 1
        assert traffic.types(traffic.sent).count("input_audio_buffer.append") == (
            BREAK_AFTER_APPENDS
        )
        assert "input_audio_buffer.commit" not in traffic.types(traffic.sent)
        files = _stored(stack, card.get_attribute("data-recording-id") or "")
        assert files.get("original.wav", 0) > duration_s(wav_path) * 16_000 * 2 * 0.9, files
    finally:
        context.close()


def test_escape_while_held_cancels_and_nothing_is_kept(
    browser: Any, stack: Stack, spoken_clip: tuple[Utterance, Path]
) -> None:
    context, page, traffic = _open_page(browser, stack)
    try:
        page.locator("#ptt[data-stream=ready]").wait_for(timeout=15_000)

        def while_held() -> None:
            page.locator("#ptt[data-state=recording]").wait_for(timeout=10_000)
            page.locator("#partial").filter(has_text=re.compile(r"\w")).wait_for(timeout=10_000)
            page.keyboard.press("Escape")
            page.locator("#ptt[data-state=idle]").wait_for(timeout=5_000)
            page.screenshot(path=SHOTS / "9-cancelled.png")

        hold(page, 0, touch=False, while_held=while_held)
        assert page.locator("#status").text_content() == "Cancelled: nothing was sent."
        assert page.locator("#partial").is_hidden()
        sent = traffic.types(traffic.sent)
        assert sent.count("input_audio_buffer.clear") == 1, sent[-3:]
        assert "input_audio_buffer.commit" not in sent
        assert traffic.received_of("input_audio_buffer.cleared")
        assert traffic.uploads == []
        # What the server had of it is dropped: no card now, none later.
        page.wait_for_timeout(3000)
        assert page.locator("#results .result").count() == 0
        assert not [line for line in traffic.console if line.startswith("pageerror")]
        stored = page.request.get(f"{stack.base_url}api/transcripts?limit=50").json()["items"]
        print("\n[cancel] stored:", [(t["recording_id"][:8], t["status"]) for t in stored])
    finally:
        context.close()
