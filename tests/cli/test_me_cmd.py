"""`whisp me settings|preview|usage|export|delete` as a person runs them: the real CLI process
against a real gateway (its SQLite database, the session's Redis) with the real audio and
agent services behind it (tests.gateway.services), each user with their own API token.
Every change is read back over REST, and a second user's settings are checked untouched.
Also: the one function that picks the agent for `whisp record` and `whisp hotkey`."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast

import pytest
from redis.asyncio import Redis

from tests.gateway import conftest as gateway_fixtures
from tests.gateway.conftest import GatewayFactory, add_users, signed_in
from tests.gateway.services import stack as services_stack
from tests.gateway.services import tone_wav
from tests.integration.bus_helpers import wait_for
from whisp_cli.desk.agent_choice import AgentChoice, resolve_agent
from whisp_cli.desk.gateway import GatewayClient, GatewayError
from whisp_cli.redis_server import free_port
from whisp_shared.codec import decode_entry
from whisp_shared.config import BusSettings
from whisp_shared.dictation import MAX_TERM_CHARS
from whisp_shared.events import RecordingCompleted
from whisp_shared.streams import PRIORITY_RECORDINGS, RECORDINGS
from whisp_shared.tail import RawEntry
from whisp_shared.user_settings import UserSettings

gateway = gateway_fixtures.gateway  # the real gateway on real HTTP, as tests/gateway use it
sqlite_url = gateway_fixtures.sqlite_url

WHISP = [sys.executable, "-m", "whisp_cli.main"]
Done = subprocess.CompletedProcess[str]
BOBS = {"vocabulary": ["Bobword"], "replacements": [{"spoken": "bb", "written": "Bob B."}]}


def whisp(
    url: str, token: str | None, *args: str, stdin: str = "", cwd: Path | None = None
) -> Done:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHISP_CLI__")}
    env |= {"COLUMNS": "200", "NO_COLOR": "1", "WHISP_TOKEN": token or ""}
    return subprocess.run(
        [*WHISP, "me", *args, "--url", url], input=stdin, capture_output=True, text=True,
        env=env, cwd=cwd, timeout=60, check=False,
    )  # fmt: skip


def together(*runs: Callable[[], Done]) -> list[Done]:
    """Independent CLI runs at once (each is a ~1 s process start)."""
    with ThreadPoolExecutor(max_workers=len(runs)) as pool:
        return list(pool.map(lambda run: run(), runs))


def words(out: str) -> str:
    """The output with Rich's spacing folded, for phrases split by the table's padding."""
    return " ".join(out.split())


@pytest.fixture
async def people(
    gateway: GatewayFactory, bus_settings: BusSettings, sqlite_url: str, tmp_path: Path
) -> Any:
    """(stack, tokens, alice's and bob's REST clients); bob has settings of his own."""
    tokens = await add_users(sqlite_url, "alice", "bob")
    with services_stack(gateway, bus_settings, tmp_path) as services:
        async with signed_in(services.gateway, tokens, "alice", "bob") as (alice, bob):
            assert (await bob.client.put("/api/me/settings", json=BOBS)).status_code == 200
            yield services, tokens, alice.client, bob.client
            assert (await bob.client.get("/api/me/settings")).json() == {
                **UserSettings().model_dump(), **BOBS,
            }  # fmt: skip


async def test_settings_are_shown_changed_and_refused_as_the_gateway_says(people: Any) -> None:
    services, tokens, alice, _bob = people
    url, token = services.gateway, tokens["alice"]

    shown = whisp(url, token, "settings")
    assert shown.returncode == 0, shown.stderr
    for line in ("vocabulary none", "replacements none", "default agent none",
                 "language auto", "keep audio yes", "audio retention keep"):  # fmt: skip
        assert line in words(shown.stdout), shown.stdout

    changed = whisp(
        url, token, "settings", "--add-word", "Kestrel", "--add-word", "Anna Lena",
        "--replace", "k8s=Kubernetes", "--replace", "new paragraph=\\n\\n",
        "--default-agent", "helper", "--language", "en", "--no-keep-audio",
        "--audio-retention-days", "7", "--transcript-retention-days", "30",
    )  # fmt: skip
    assert changed.returncode == 0, changed.stderr
    out = words(changed.stdout)
    assert "vocabulary Kestrel, Anna Lena" in out
    assert "k8s → Kubernetes" in out and "new paragraph → \\n\\n" in out  # the line breaks shown
    assert "default agent helper" in out and "7 days" in out and "30 days" in out
    saved = (await alice.get("/api/me/settings")).json()
    assert saved == {
        "vocabulary": ["Kestrel", "Anna Lena"],
        "replacements": [
            {"spoken": "k8s", "written": "Kubernetes"},
            {"spoken": "new paragraph", "written": "\n\n"},
        ],
        "default_agent": "helper", "language": "en", "keep_audio": False,
        "audio_retention_days": 7, "transcript_retention_days": 30,
    }  # fmt: skip

    # Lists are edited, not replaced; "keep" and "auto" unset; a phrase's new rule wins.
    edited = whisp(
        url, token, "settings", "--remove-word", "kestrel", "--unreplace", "K8S",
        "--replace", "new paragraph=¶", "--replace", "btw=by the way",
        "--audio-retention-days", "keep", "--language", "auto", "--keep-audio",
        "--no-default-agent", "--json",
    )  # fmt: skip
    assert edited.returncode == 0, edited.stderr
    saved = (await alice.get("/api/me/settings")).json()
    assert json.loads(edited.stdout) == saved
    assert saved["vocabulary"] == ["Anna Lena"]
    assert saved["replacements"] == [
        {"spoken": "new paragraph", "written": "¶"},
        {"spoken": "btw", "written": "by the way"},
    ]
    assert (saved["audio_retention_days"], saved["language"]) == (None, None)
    assert (saved["keep_audio"], saved["default_agent"]) == (True, None)

    # Refused input: the gateway's own message, exit code 2, nothing stored.
    long_word = "x" * (MAX_TERM_CHARS + 1)
    direct = await alice.patch("/api/me/settings", json={"vocabulary": ["Anna Lena", long_word]})
    assert direct.status_code == 422
    refused, unknown, bad_days, bad_rule = together(
        lambda: whisp(url, token, "settings", "--add-word", long_word),
        lambda: whisp(url, token, "settings", "--default-agent", "nobody"),
        lambda: whisp(url, token, "settings", "--audio-retention-days", "soon"),
        lambda: whisp(url, token, "settings", "--replace", "no equals sign"),
    )
    assert refused.returncode == 2, refused.stderr
    assert direct.json()["message"] in words(refused.stderr)
    assert "invalid_request (HTTP 422)" in refused.stderr
    assert unknown.returncode == 2 and "unknown_agent (HTTP 422)" in unknown.stderr
    assert "nobody" in unknown.stderr
    assert bad_days.returncode == bad_rule.returncode == 2  # refused before sending
    assert (await alice.get("/api/me/settings")).json() == saved

    preview = whisp(url, token, "preview", "btw we meet. New paragraph, next")
    assert preview.returncode == 0, preview.stderr
    expected = await alice.post(
        "/api/me/settings/preview", json={"text": "btw we meet. New paragraph, next"}
    )
    assert preview.stdout.rstrip("\n") == expected.json()["text"]
    assert preview.stdout.startswith("by the way we meet. ¶")

    # The saved default agent is what `whisp record` / `whisp hotkey` then use.
    assert whisp(url, token, "settings", "--default-agent", "tidy").returncode == 0
    client = GatewayClient(url, token)
    try:
        choice = resolve_agent(None, None, client.my_settings)
    finally:
        client.close()
    assert (choice.agent, choice.source) == ("tidy", "your settings")
    assert choice.note is not None and "tidy" in choice.note


async def test_export_writes_my_data_and_delete_needs_my_name(people: Any, tmp_path: Path) -> None:
    services, tokens, alice, bob = people
    url, token = services.gateway, tokens["alice"]
    assert whisp(url, token, "settings", "--add-word", "Kestrel").returncode == 0
    for person in (alice, bob):
        chat = await person.post(
            "/api/agents/chat", json={"agent": "helper", "input": "remember", "session_id": "s1"}
        )
        assert chat.status_code == 200, chat.text

    target = tmp_path / "mine.jsonl"
    exported = whisp(url, token, "export", "-o", str(target))
    assert exported.returncode == 0, exported.stderr
    lines = [json.loads(line) for line in target.read_text().splitlines()]
    assert [lines[0]["type"], lines[1]["type"], lines[-1]["type"]] == ["export", "settings", "end"]
    assert lines[0]["user"]["name"] == "alice"
    assert lines[1]["settings"]["vocabulary"] == ["Kestrel"]
    assert any(line["type"] == "agent_session" for line in lines)
    assert lines[-1]["agent_sessions"] == 1
    assert "0 transcript(s), 1 agent session(s)" in exported.stdout
    assert not list(tmp_path.glob("*.part"))
    here = tmp_path / "cwd"
    here.mkdir()
    piped, default_name, *refusals = together(
        lambda: whisp(url, token, "export", "-o", "-"),
        lambda: whisp(url, token, "export", cwd=here),
        # Without the right name nothing is deleted: no answer, someone else's, a wrong one.
        lambda: whisp(url, token, "delete", stdin=""),
        lambda: whisp(url, token, "delete", "--confirm", "bob"),
        lambda: whisp(url, token, "delete", stdin="Alice\n"),
    )
    assert piped.returncode == 0, piped.stderr
    assert [json.loads(line)["type"] for line in piped.stdout.splitlines()][-1] == "end"
    assert default_name.returncode == 0, default_name.stderr
    assert [p.name for p in here.iterdir()] == [f"whisptt-my-data-{date.today()}.jsonl"]
    for refused in refusals:
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert "Nothing deleted" in refused.stderr
        assert "everything of yours" in refused.stdout and "alice" in refused.stdout
    assert (await alice.get("/api/me/settings")).json()["vocabulary"] == ["Kestrel"]

    done = whisp(url, token, "delete", stdin="alice\n")
    assert done.returncode == 0, done.stderr
    assert "1 settings" in done.stdout and "1 agent session(s)" in done.stdout
    assert (await alice.get("/api/me/settings")).json() == UserSettings().model_dump()
    bobs = [json.loads(line) for line in (await bob.get("/api/me/export")).text.splitlines()]
    assert bobs[-1]["agent_sessions"] == 1  # bob's session stays (his settings: the fixture)
    again = whisp(url, token, "delete", "--confirm", "alice")
    assert again.returncode == 0 and "0 settings" in again.stdout


async def test_usage_shows_todays_audio_against_my_quota(
    gateway: GatewayFactory, bus_settings: BusSettings, sqlite_url: str, tmp_path: Path
) -> None:
    tokens = await add_users(sqlite_url, "alice", "bob", "carol")
    quota = {"audio_seconds_per_day": 60, "per_user": {"carol": None}}
    clip = {"file": ("clip.wav", tone_wav(tmp_path / "clip.wav", 1.5), "audio/wav")}
    with services_stack(gateway, bus_settings, tmp_path, quota=quota) as services:
        async with signed_in(services.gateway, tokens, "alice", "carol") as (alice, carol):
            for person in (alice, carol):
                sent = await person.client.post("/api/recordings", files=clip)
                assert sent.status_code == 202, sent.text
        today = datetime.now(UTC).date()
        mine, bobs, carols = together(
            *(lambda name=name: whisp(services.gateway, tokens[name], "usage")
              for name in ("alice", "bob", "carol"))
        )  # fmt: skip
    assert mine.returncode == 0, mine.stderr
    assert mine.stdout.startswith(f"1.5 s of 60 s of audio today ({today}): 58.5 s left;")
    assert f"resets {today + timedelta(days=1)} 00:00 UTC." in mine.stdout
    assert bobs.stdout.startswith(f"0 s of 60 s of audio today ({today}): 60 s left;")
    assert carols.stdout.strip() == f"1.5 s of audio today ({today}); no quota."


def hotkey_without_display(
    url: str, token: str, clip: Path, runtime: Path
) -> subprocess.Popen[str]:
    """`whisp hotkey` as under Wayland: no key listener, a recording toggled by SIGUSR1
    (what `whisp hotkey --toggle-running` sends), each clip uploaded on stop."""
    env = {k: v for k, v in os.environ.items()
           if k != "DISPLAY" and not k.startswith("WHISP_CLI__")}  # fmt: skip
    env |= {"WAYLAND_DISPLAY": "wayland-0", "XDG_RUNTIME_DIR": str(runtime), "WHISP_TOKEN": token}
    argv = [*WHISP, "hotkey", "--input", str(clip), "--url", url, "--no-stream", "--no-tray",
            "--no-notify"]  # fmt: skip
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)  # fmt: skip


def read_until(process: subprocess.Popen[str], marker: str, timeout_s: float = 30) -> str:
    """Its output up to the line holding `marker` (a reader thread, so a hang times out)."""
    lines: queue.Queue[str] = queue.Queue()
    assert process.stdout is not None
    stdout = process.stdout

    def pump() -> None:
        for line in stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    seen = ""
    while marker not in seen:
        seen += lines.get(timeout=timeout_s)
    return seen


async def test_whisp_hotkey_sends_to_the_saved_default_agent(
    people: Any, redis: Redis, tmp_path: Path
) -> None:
    services, tokens, alice, _bob = people
    assert (await alice.patch("/api/me/settings", json={"default_agent": "tidy"})).is_success
    clip = tmp_path / "tone.wav"
    tone_wav(clip)
    daemon = hotkey_without_display(services.gateway, tokens["alice"], clip, tmp_path)
    try:
        said = read_until(daemon, "ready:")
        assert "transcripts go to tidy (your default agent" in said, said
        daemon.send_signal(signal.SIGUSR1)  # start
        await asyncio.sleep(0.6)
        daemon.send_signal(signal.SIGUSR1)  # stop: the clip is uploaded

        async def uploaded() -> list[RecordingCompleted]:
            lanes = [cast(list[RawEntry], await redis.xrange(lane))
                     for lane in (RECORDINGS, PRIORITY_RECORDINGS)]  # fmt: skip
            found = [fields for entries in lanes for _, fields in entries]
            return [e for e in map(decode_entry, found) if isinstance(e, RecordingCompleted)]

        async def arrived() -> bool:
            return bool(await uploaded())

        await wait_for(arrived, timeout=20)
        assert [e.agent_id for e in await uploaded()] == ["tidy"]
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=20)


@pytest.fixture
def cut_off_gateway() -> Iterator[str]:
    """A stand-in that sends the first lines of an export and hangs up before `end`."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_args: Any) -> None:
            pass

        def do_GET(self) -> None:
            body = b'{"type": "export"}\n{"type": "settings", "settings": {}}\n'
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ndjson")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_cut_off_export_fails_and_leaves_no_partial_file(
    cut_off_gateway: str, tmp_path: Path
) -> None:
    target = tmp_path / "export.jsonl"
    target.write_text("an earlier, whole export\n")
    done = whisp(cut_off_gateway, None, "export", "-o", str(target))
    assert done.returncode == 1
    assert "the export was cut off (no end line arrived)" in words(done.stderr)
    assert target.read_text() == "an earlier, whole export\n"  # not replaced by half of one
    assert list(tmp_path.iterdir()) == [target]


def test_an_unreachable_gateway_is_exit_code_1() -> None:
    done = whisp(f"http://127.0.0.1:{free_port()}", None, "settings")
    assert done.returncode == 1
    assert "cannot reach the gateway" in done.stderr


def saved_settings(default_agent: str | None) -> Any:
    calls: list[int] = []

    def fetch() -> UserSettings:
        calls.append(1)
        return UserSettings(default_agent=default_agent)

    return fetch, calls


def test_the_agent_is_the_option_then_the_config_then_the_saved_default() -> None:
    fetch, calls = saved_settings("helper")
    assert resolve_agent("poet", "cleanup", fetch) == AgentChoice("poet", "--agent")
    assert resolve_agent(None, "cleanup", fetch) == AgentChoice("cleanup", "cli.agent")
    assert calls == []  # the settings are read only when they decide
    saved = resolve_agent(None, None, fetch)
    assert (saved.agent, saved.source, calls) == ("helper", "your settings", [1])
    none_saved, _ = saved_settings(None)
    assert resolve_agent(None, None, none_saved) == AgentChoice(None, "none")


def test_a_failing_settings_fetch_means_no_agent_and_a_note() -> None:
    def away() -> UserSettings:
        raise GatewayError("cannot reach the gateway at http://127.0.0.1:9")

    choice = resolve_agent(None, None, away)
    assert (choice.agent, choice.source) == (None, "none")
    assert choice.note is not None and "cannot reach the gateway" in choice.note
    # A real GatewayClient against nothing listening: the same, not an exception.
    client = GatewayClient(f"http://127.0.0.1:{free_port()}", None)
    try:
        real = resolve_agent(None, None, client.my_settings)
    finally:
        client.close()
    assert real.agent is None and real.note is not None and "cannot reach" in real.note
