""" "My settings" in a real browser: a person edits their vocabulary and replacements, tries
a rule before saving it, saves, and finds it all again after a reload; the server's 422 shows
next to the form; the default agent is what "Send to" preselects; "export everything of
mine" downloads it and "delete everything of mine" (after typing the user name) leaves
nothing. Another user's settings never move.

The whole stack runs as `whisp up` (Redis, audio, one tiny.en worker, agents, gateway; the
local LLM is off: no answer is looked at). What the page did is checked against the REST
API, the truth the page only shows. Screenshots land in tests/e2e/artifacts/settings/.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.browser_support import (
    ARTIFACTS,
    Stack,
    chromium,
    rest_clients,
    sign_in,
    spoken_wav,
    whisp_stack,
)
from tests.support.tools import needs_tools, require_tool
from whisp_shared.dictation import MAX_TERM_CHARS, Replacement, apply_replacements
from whisp_shared.user_settings import UserSettings

pytestmark = [
    pytest.mark.e2e,
    needs_tools("chromium", why="Debian's chromium, driven by Playwright"),
]

SHOTS = ARTIFACTS / "settings"
USERS = ("ada", "grace", "bob")  # ada edits, grace exports and deletes, bob only watches
DEFAULTS = UserSettings().model_dump()
BOBS = {**DEFAULTS, "vocabulary": ["Zebra"], "language": "de", "default_agent": "poet"}
RULES = [
    {"spoken": "k8s", "written": "Kubernetes"},
    {"spoken": "new paragraph", "written": "\n\n"},  # typed as \n\n in the page
]
SAID = "we deploy on k8s new paragraph then we test"
ADAS: dict[str, Any] = {
    "vocabulary": ["Siobhan Okonkwo", "Kestrel Dynamics"],
    "replacements": RULES,
    "default_agent": "summarizer",
    "language": "en",
    "keep_audio": False,
    "audio_retention_days": 7,
    "transcript_retention_days": 30,
}


@pytest.fixture(scope="module")
def stacked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, dict[str, str]]]:
    env = {"WHISP_AGENTS__LOCAL_LLM__ENABLED": "false"}
    with whisp_stack(tmp_path_factory.mktemp("settings-stack"), USERS, env=env) as stacked:
        yield stacked


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A spoken sentence: the microphone Chromium needs, and a recording to upload."""
    return spoken_wav("dentist", tmp_path_factory.mktemp("speech"), 0.2)[1]


@pytest.fixture(scope="module")
def browser(clip: Path) -> Iterator[Any]:
    with chromium(require_tool("chromium", "Debian's chromium"), clip) as browser:
        yield browser


@pytest.fixture(scope="module")
def api(stacked: tuple[Stack, dict[str, str]]) -> Iterator[dict[str, httpx.Client]]:
    """Each user's REST client (bearer token): what the server really holds."""
    with rest_clients(*stacked) as clients:
        put = clients["bob"].put("api/me/settings", json=BOBS)
        assert put.status_code == 200, put.text
        yield clients


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    yield page
    context.close()
    assert not errors, errors


def open_settings(page: Any) -> Any:
    page.click("[data-testid=settings-open]")
    dialog = page.locator("[data-testid=settings]")
    dialog.wait_for(state="visible")
    return dialog


def settings_of(client: httpx.Client) -> dict[str, Any]:
    response = client.get("api/me/settings")
    assert response.status_code == 200, response.text
    return dict(response.json())


def picked(page: Any, value: str) -> None:
    """Wait until "Send to" shows `value` (the agent list and the settings load apart)."""
    page.wait_for_function(
        "v => document.querySelector('#agent').value === v", arg=value, timeout=15_000
    )


def test_edit_try_save_reload_and_the_default_agent(
    page: Any, stacked: tuple[Stack, dict[str, str]], api: dict[str, httpx.Client]
) -> None:
    stack, tokens = stacked
    SHOTS.mkdir(parents=True, exist_ok=True)
    sign_in(page, stack.base_url, tokens["ada"])
    page.locator("#agent option[value='agent:summarizer']").wait_for(state="attached")
    dialog = open_settings(page)
    assert page.evaluate("document.activeElement.id") == "vocabulary-input"

    # Two words (Enter adds one, so does the button), two rules; one writes a blank line.
    page.fill("#vocabulary-input", ADAS["vocabulary"][0])
    page.press("#vocabulary-input", "Enter")
    page.fill("#vocabulary-input", ADAS["vocabulary"][1])
    page.click("[data-testid=vocabulary-add]")
    terms = dialog.locator("[data-testid=term] .term-text")
    assert terms.all_text_contents() == ADAS["vocabulary"]
    assert page.text_content("[data-testid=vocabulary-count]") == "2 of 200 words."
    for n, (spoken, written) in enumerate([("k8s", "Kubernetes"), ("new paragraph", "\\n\\n")]):
        page.click("[data-testid=replacements-add]")
        page.locator("[data-testid=rule-spoken]").nth(n).fill(spoken)
        page.locator("[data-testid=rule-written]").nth(n).fill(written)

    # The test field shows the draft rules' effect, exactly as a transcript would get it,
    # while nothing is saved yet.
    page.fill("[data-testid=preview-input]", SAID)
    expected = apply_replacements(SAID, [Replacement(**rule) for rule in RULES])
    assert "Kubernetes" in expected and "\n\n" in expected
    result = page.locator("[data-testid=preview-result][data-state=ok]")
    result.wait_for()
    page.wait_for_function(
        "t => document.querySelector('#preview-result').textContent === t", arg=expected
    )
    assert settings_of(api["ada"]) == DEFAULTS
    assert page.text_content("[data-testid=settings-state]") == "Unsaved changes."
    # A draft rule removed: the preview follows at once.
    page.locator("[data-testid=rule-remove]").nth(1).click()
    page.wait_for_function(
        "() => document.querySelector('#preview-result').textContent.includes('new paragraph')"
    )
    page.click("[data-testid=replacements-add]")
    page.locator("[data-testid=rule-spoken]").nth(1).fill("new paragraph")
    page.locator("[data-testid=rule-written]").nth(1).fill("\\n\\n")
    page.wait_for_function(
        "t => document.querySelector('#preview-result').textContent === t", arg=expected
    )

    page.select_option("[data-testid=default-agent]", "summarizer")
    page.fill("[data-testid=language]", "en")
    page.uncheck("[data-testid=keep-audio]")
    page.fill("[data-testid=audio-days]", "7")
    page.fill("[data-testid=transcript-days]", "30")
    page.screenshot(path=SHOTS / "1-draft.png", full_page=True)
    page.click("[data-testid=settings-save]")
    page.locator("[data-testid=settings-state][data-state=saved]").wait_for()
    assert settings_of(api["ada"]) == ADAS
    picked(page, "agent:summarizer")  # the new default is preselected at once

    page.keyboard.press("Escape")
    dialog.wait_for(state="hidden")
    assert page.evaluate("document.activeElement.dataset.testid") == "settings-open"

    # After a reload: the same values, the default agent preselected.
    page.reload()
    page.locator("#connection[data-state=live]").wait_for(timeout=15_000)
    picked(page, "agent:summarizer")
    open_settings(page)
    page.locator("[data-testid=term]").nth(1).wait_for()
    assert terms.all_text_contents() == ADAS["vocabulary"]
    spoken = page.locator("[data-testid=rule-spoken]")
    written = page.locator("[data-testid=rule-written]")
    assert [spoken.nth(i).input_value() for i in range(2)] == ["k8s", "new paragraph"]
    assert [written.nth(i).input_value() for i in range(2)] == ["Kubernetes", "\\n\\n"]
    assert page.input_value("[data-testid=default-agent]") == "summarizer"
    assert page.input_value("[data-testid=language]") == "en"
    assert not page.is_checked("[data-testid=keep-audio]")
    assert page.input_value("[data-testid=audio-days]") == "7"
    assert page.input_value("[data-testid=transcript-days]") == "30"
    assert page.text_content("[data-testid=settings-state]") == "All changes saved."

    # A word past the bound: the server's 422, in the form, at the word; nothing stored.
    too_long = "x" * (MAX_TERM_CHARS + 1)
    refused = api["ada"].put("api/me/settings", json={**ADAS, "vocabulary": [too_long]})
    assert refused.status_code == 422
    server_says = refused.json()["message"].split(": ", 1)[1]  # after "field 'vocabulary.0'"
    assert "64 characters" in server_says
    page.fill("#vocabulary-input", too_long)
    page.press("#vocabulary-input", "Enter")
    page.click("[data-testid=settings-save]")
    error = page.locator("[data-testid=settings-error]")
    error.filter(has_text=server_says).wait_for()
    assert "Word 3" in (error.text_content() or "")
    assert "vocabulary.2" not in (error.text_content() or "")  # no field paths on show
    assert server_says in (page.text_content("[data-testid=vocabulary-error]") or "")
    assert page.get_attribute("[data-testid=term] >> nth=2", "aria-invalid") == "true"
    assert page.get_attribute("[data-testid=settings-state]", "data-state") == "error"
    page.screenshot(path=SHOTS / "2-refused.png", full_page=True)
    assert settings_of(api["ada"]) == ADAS
    page.locator("[data-testid=term] >> nth=2").get_by_role("button").click()
    page.click("[data-testid=settings-save]")
    page.locator("[data-testid=settings-state][data-state=saved]").wait_for()
    assert not error.text_content()
    page.click("[data-testid=settings-close]")

    # A pick made here after the default was set stays; a default set later (the CLI, say)
    # wins over that older pick.
    page.select_option("#agent", "agent:assistant")
    page.reload()
    page.locator("#connection[data-state=live]").wait_for(timeout=15_000)
    page.wait_for_timeout(500)  # the settings are read: nothing moves the pick
    picked(page, "agent:assistant")
    patched = api["ada"].patch("api/me/settings", json={"default_agent": "meeting"})
    assert patched.status_code == 200, patched.text
    page.reload()
    picked(page, "pipeline:meeting")

    assert settings_of(api["bob"]) == BOBS  # ada's page never touched bob's


def test_export_then_delete_everything_of_mine(
    page: Any, stacked: tuple[Stack, dict[str, str]], api: dict[str, httpx.Client], clip: Path
) -> None:
    stack, tokens = stacked
    SHOTS.mkdir(parents=True, exist_ok=True)
    grace = api["grace"]
    mine = {**DEFAULTS, "vocabulary": ["Kestrel"], "replacements": RULES[:1]}
    assert grace.put("api/me/settings", json=mine).status_code == 200
    sign_in(page, stack.base_url, tokens["grace"])
    # A recording made elsewhere: in the history and in "This session" once transcribed.
    upload = grace.post(
        "api/recordings", files={"file": ("clip.wav", clip.read_bytes(), "audio/wav")}
    )
    assert upload.status_code == 202, upload.text
    recording_id = upload.json()["recording_id"]
    page.locator(f"#history .item[data-recording-id='{recording_id}'][data-status=done]").wait_for(
        timeout=60_000
    )
    page.locator(f"#results .result[data-recording-id='{recording_id}']").wait_for()

    open_settings(page)
    with page.expect_download() as download:
        page.click("[data-testid=export-mine]")
    lines = [json.loads(line) for line in Path(download.value.path()).read_text().splitlines()]
    types = [line["type"] for line in lines]
    assert types == ["export", "settings", "transcript", "end"], types
    assert lines[0]["user"]["name"] == "grace"
    assert lines[1]["settings"] == mine
    assert lines[2]["transcript"]["recording_id"] == recording_id
    assert lines[-1]["transcripts"] == 1

    # Deleting asks for the user name first; the dialog says it cannot be undone.
    page.click("[data-testid=delete-mine-start]")
    confirm = page.locator("[data-testid=delete-confirm]")
    confirm.wait_for()
    assert "cannot be undone" in (confirm.text_content() or "")
    assert page.evaluate("document.activeElement.id") == "delete-name"
    go = page.locator("[data-testid=delete-mine]")
    assert go.is_disabled()
    page.fill("[data-testid=delete-name]", "Grace")
    assert go.is_disabled()
    page.fill("[data-testid=delete-name]", "grace")
    assert go.is_enabled()
    page.screenshot(path=SHOTS / "3-confirm.png", full_page=True)
    go.click()
    status = page.locator("[data-testid=my-data-status]")
    status.filter(has_text="Deleted").wait_for(timeout=30_000)
    said = status.text_content() or ""
    assert "1 transcript" in said and "1 recording" in said and "your settings" in said, said
    page.screenshot(path=SHOTS / "4-deleted.png", full_page=True)

    # The page forgot it all; so did the server; bob kept his.
    assert page.locator("#history .item").count() == 0
    assert page.locator("#results .result").count() == 0
    assert page.text_content("#status") == said
    assert page.locator("[data-testid=term]").count() == 0
    assert settings_of(grace) == DEFAULTS
    assert grace.get("api/transcripts").json()["items"] == []
    assert settings_of(api["bob"]) == BOBS
