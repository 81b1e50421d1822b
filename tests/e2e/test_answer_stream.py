"""An agent's answer grows on the screen as it is written, before the stored one replaces
it: in a real browser (pick an agent, hold to talk), in `whisp record --agent` and in
`whisp agent run` (both in a real terminal, tmux).

The whole stack runs as `whisp up` (Redis, audio, one tiny.en worker, agents, gateway); the
agents' model is the local chat-completions stand-in (`tests.agents.chat_stub`, its address
given as the `local` provider), writing its answer a word every `WORD_DELAY_S`, so the
answer takes ~1.7 s to write and every run is the same. A user is created first: the page
signs in with a token, the CLI sends it as WHISP_TOKEN.

What the page showed is read from the page itself (a probe installed before its scripts
notes every text the growing answer had, on the page's own clock); what the terminal showed,
from tmux's screen, read every 50 ms.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.agents.chat_stub import ChatStub, Reply
from tests.cli import test_record_tmux
from tests.cli.conftest import DeskStack
from tests.cli.test_record_tmux import (
    Pane,
    finished_turn,
    quit_cleanly,
    read_timings,
    start_command,
    start_record,
)
from tests.e2e.browser_support import ARTIFACTS, Stack, add_user, chromium, hold, spoken_wav
from tests.support.processes import WhispUp
from tests.support.speech import Utterance, duration_s
from tests.support.tools import needs_tools, require_tool

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
BROWSER = needs_tools("chromium", why="Debian's chromium, driven by Playwright")
TERMINAL = needs_tools("tmux", why="a real terminal for the CLI")

SHOTS = ARTIFACTS / "answer-stream"
CLIP_ID = "late-for-dinner"  # 14 words, 4.6 s
LEAD_S = 0.5
HOLD_EXTRA_S = 0.7
# Short enough for one line of an 80-column terminal, where Rich wraps a longer one.
ANSWER = "Dinner at eight works for me, I will let everyone know."
WORD_DELAY_S = 0.15  # 11 words: ~1.7 s of writing
ANSWER_TIMEOUT_MS = 90_000
SCREEN_EVERY_S = 0.05

pane = test_record_tmux.pane  # the fixture: a tmux server of the test's own


def grew(texts: list[str], final: str) -> list[str]:
    """The distinct texts of a growing answer that were shorter than the final one: each
    must be its start (the words came in order, none twice)."""
    seen = list(dict.fromkeys(t.strip() for t in texts if t.strip()))
    for text in seen:
        assert final.startswith(text), (text, final)
    return [t for t in seen if len(t) < len(final)]


# --- the stack ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model() -> Iterator[ChatStub]:
    with ChatStub(Reply(text=ANSWER, word_delay_s=WORD_DELAY_S)) as stub:
        yield stub


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, model: ChatStub) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("answer-stack")
    data_dir, log_dir = root / "data", root / "logs"
    data_dir.mkdir()
    database_url = f"sqlite+aiosqlite:///{data_dir / 'gateway.db'}"  # where `whisp up` puts it
    token = add_user("answer-tester", database_url)
    up = WhispUp(
        data_dir,
        log_dir,
        workers=1,
        unset=("REDIS_URL", "DATABASE_URL", "WHISP_TOKEN"),
        env={
            "WHISP_AGENTS__LOCAL_LLM__ENABLED": "false",  # no model to load: the stand-in is it
            "WHISP_AGENTS__PROVIDERS__LOCAL__BASE_URL": model.base_url,
            "WHISP_AGENTS__PROVIDERS__LOCAL__MODEL": "stub-model",
        },
    )
    with up:
        yield Stack(up.url, token, data_dir, up.banner)
    assert up.returncode == 0, up.output[-3000:]


@pytest.fixture(scope="module")
def spoken_clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Utterance, Path]:
    return spoken_wav(CLIP_ID, tmp_path_factory.mktemp("speech"), LEAD_S)


# --- the page ----------------------------------------------------------------------------

# Installed before the page's own scripts: every text the answer had while it was being
# written, and the moment the stored one replaced it (performance.now: the page's clock).
PROBE = """
(() => {
  const probe = (window.__answer = { thinking: null, growing: [], final: null });
  const check = () => {
    const now = performance.now();
    const thinking = document.querySelector("#results .result[data-status=thinking]");
    if (probe.thinking === null && thinking) probe.thinking = now;
    const writing = document.querySelector(
      "#results .result .answer-item[data-state=streaming] .answer-text",
    );
    if (writing) {
      const text = writing.textContent;
      const last = probe.growing[probe.growing.length - 1];
      if (!last || last.text !== text) probe.growing.push({ ms: now, text });
    }
    const stored = document.querySelector(
      "#results .result[data-status=done] .answer-item[data-state=done] .answer-text",
    );
    if (stored && probe.final === null) probe.final = { ms: now, text: stored.textContent };
  };
  new MutationObserver(check).observe(document, {
    subtree: true, childList: true, characterData: true, attributes: true,
  });
})();
"""


@BROWSER
def test_the_answer_grows_in_the_page_before_the_stored_one_replaces_it(
    stack: Stack, spoken_clip: tuple[Utterance, Path], model: ChatStub
) -> None:
    _utterance, wav_path = spoken_clip
    SHOTS.mkdir(parents=True, exist_ok=True)
    executable = require_tool("chromium", "Debian's chromium, driven by Playwright")
    with chromium(executable, wav_path) as browser:
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        context.add_init_script(PROBE)
        console: list[str] = []
        try:
            page = context.new_page()
            page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
            page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
            page.goto(f"{stack.base_url}/")
            page.locator("#login-form").wait_for(state="visible", timeout=15_000)
            page.fill("#token", stack.token)
            page.press("#token", "Enter")
            page.locator("#connection[data-state=live]").wait_for(timeout=15_000)
            page.locator("#agent option[value='agent:assistant']").wait_for(
                state="attached", timeout=15_000
            )
            page.select_option("#agent", "agent:assistant")
            page.locator("#ptt[data-stream=ready]").wait_for(timeout=15_000)

            hold(page, duration_s(wav_path) + HOLD_EXTRA_S, touch=False, while_held=lambda: None)
            card = page.locator("#results .result").first
            writing = card.locator(".answer[data-state=streaming] .answer-text")
            writing.filter(has_text=re.compile(r"\w+ \w+")).wait_for(timeout=ANSWER_TIMEOUT_MS)
            page.screenshot(path=SHOTS / "1-writing.png")
            card.and_(page.locator("[data-status=done]")).wait_for(timeout=ANSWER_TIMEOUT_MS)
            page.screenshot(path=SHOTS / "2-stored.png")
            probe: dict[str, Any] = page.evaluate("window.__answer")
        finally:
            context.close()

    final = probe["final"]
    assert final is not None and final["text"].strip() == ANSWER, (probe, console)
    growing = [g for g in probe["growing"] if g["ms"] < final["ms"]]
    partial = grew([g["text"] for g in growing], ANSWER)
    print(f"\n[page] the answer had {len(partial)} texts before the stored one:")
    for g in growing:
        print(f"[page]   {g['ms'] - probe['thinking']:>6.0f} ms  {g['text'][:60]!r}")
    # Observed growing: at least two different lengths, both short of the whole answer.
    assert len({len(t) for t in partial}) >= 2, probe["growing"]
    first_ms = growing[0]["ms"] - probe["thinking"]
    print(f"[page] first words {first_ms:.0f} ms after the transcript; stored answer "
          f"{final['ms'] - growing[0]['ms']:.0f} ms after them")  # fmt: skip
    # No piece drew the growing answer again once the stored one was in.
    assert all(g["ms"] <= final["ms"] for g in probe["growing"]), probe["growing"]
    assert not [line for line in console if line.startswith("pageerror")], console
    assert model.completions, "the stand-in never answered"


# --- the terminal ------------------------------------------------------------------------


def watch_screen(
    terminal: Pane, pattern: str, done: str, timeout_s: float
) -> tuple[list[str], str]:
    """Read the screen every SCREEN_EVERY_S: (each group(1) of `pattern` seen, in order,
    until `done` matched twice in a row, alike; `done`'s group(1)). Twice, because a read
    can catch the live area half redrawn: a growing line cut short looks finished."""
    seen: list[str] = []
    last_done: str | None = None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        screen = terminal.screen()
        finished = re.search(done, screen, re.M)
        if finished and finished.group(1) == last_done:
            return seen, last_done
        last_done = finished.group(1) if finished else None
        if found := re.search(pattern, screen, re.M):
            seen.append(found.group(1))
        time.sleep(SCREEN_EVERY_S)
    raise AssertionError(f"no {done!r} after {timeout_s} s:\n{terminal.screen()}")


@TERMINAL
def test_whisp_record_shows_the_answer_as_it_is_written(
    pane: Pane, stack: Stack, spoken_clip: tuple[Utterance, Path], tmp_path: Path
) -> None:
    _utterance, clip = spoken_clip
    desk = DeskStack(stack.base_url, stack.data_dir.parent / "logs")
    timings = tmp_path / "timings.jsonl"
    start_record(pane, desk, clip, timings, "--agent", "assistant",
                 env={"WHISP_TOKEN": stack.token})  # fmt: skip
    pane.hold_space(duration_s(clip) + 0.3)
    texts, final = watch_screen(
        pane, r"^ +assistant: (.*)▍$", r"^ +assistant: ([^▍\n]+)$", ANSWER_TIMEOUT_MS / 1000
    )
    screen = pane.screen()
    assert final.strip() == ANSWER, screen
    assert finished_turn(pane, desk)
    quit_cleanly(pane)

    partial = grew(texts, ANSWER)
    print(f"\n[record] {len(partial)} texts before the final: {[t[:40] for t in partial]}")
    assert len({len(t) for t in partial}) >= 2, texts
    (turn,) = read_timings(timings)
    first, whole = turn["stop_to_first_answer_piece_ms"], turn["stop_to_answer_ms"]
    print(f"[record] after the release: transcript {turn['stop_to_transcript_ms']} ms, first "
          f"answer words {first} ms, the whole answer {whole} ms")  # fmt: skip
    assert float(first) < float(whole) - 1000, turn  # type: ignore[arg-type]


@TERMINAL
def test_whisp_agent_run_prints_the_answer_as_it_is_written(pane: Pane, stack: Stack) -> None:
    argv = [sys.executable, "-m", "whisp_cli.main", "agent", "run", "assistant",
            "are we still on for dinner at eight", "--url", stack.base_url]  # fmt: skip
    start_command(pane, argv, {"WHISP_TOKEN": stack.token})
    texts, usage = watch_screen(pane, r"^assistant: (.*)$", r"^(assistant · .*tokens.*)$", 60)
    pane.wait_for(r"WHISP_EXIT=0", timeout_s=10)
    final = re.search(r"^assistant: (.*)$", pane.screen(), re.M)
    assert final is not None and final.group(1).strip() == ANSWER, pane.screen()
    partial = grew(texts, ANSWER)
    print(f"\n[agent run] {len(partial)} texts before the final; {usage}")
    assert len({len(t) for t in partial}) >= 2, texts
