"""The desk tools' plumbing: SSE parsing and routing against a real HTTP server, error
messages, settings, key decoding, autostart entries, display detection, import weight."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from whisp_cli.desk.events import EventFeed, parse_sse
from whisp_cli.desk.gateway import GatewayClient, GatewayError, error_from
from whisp_cli.desk.settings import CliSettings, HotkeySettings
from whisp_cli.desk.sources import parse_device
from whisp_cli.hotkey.autostart import config_home, desktop_exec, install_autostart, pid_path
from whisp_cli.hotkey.listener import display_kind
from whisp_cli.record.terminal import Key, decode
from whisp_cli.record.view import meter
from whisp_shared.config import ConfigError
from whisp_shared.events import utc_now
from whisp_shared.options import RecordingOptions
from whisp_shared.views import Transcript, TranscriptUpdated


def transcript(recording_id: str, text: str) -> TranscriptUpdated:
    """The snapshot the gateway sends once a recording is transcribed."""
    now = utc_now()
    return TranscriptUpdated(
        recording_id=recording_id,
        user_id="local",
        transcript=Transcript(
            recording_id=recording_id,
            status="done",
            text=text,
            engine="test",
            model="test",
            duration_s=1.0,
            processing_s=0.1,
            created_at=now,
            updated_at=now,
        ),
    )


def test_parse_sse_handles_comments_multiline_data_and_ids() -> None:
    lines = [": ping", "", "event: a", "id: 1-0", "data: x", "data: y", "", "data: z", ""]
    messages = list(parse_sse(lines))
    assert [(m.event, m.data, m.id) for m in messages] == [
        ("a", "x\ny", "1-0"),
        ("message", "z", "1-0"),
    ]


class _SseServer(ThreadingHTTPServer):
    daemon_threads = True
    status = 200
    body = b""
    seen_headers: dict[str, str]


class _Handler(BaseHTTPRequestHandler):
    server: _SseServer

    def do_GET(self) -> None:
        self.server.seen_headers = dict(self.headers)
        if self.server.status != 200:
            body = json.dumps({"code": "unauthorized", "message": "no token"}).encode()
            self.send_response(self.server.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        self.wfile.write(self.server.body)
        self.wfile.flush()
        threading.Event().wait(1.0)  # keep the stream open briefly, like a live gateway

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def sse_server() -> Iterator[_SseServer]:
    server = _SseServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _url(server: _SseServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def test_event_feed_routes_by_recording_and_keeps_early_events(sse_server: _SseServer) -> None:
    early, mine = transcript("rec-early", "first"), transcript("rec-2", "second")
    sse_server.body = (
        f"id: 5-0\nevent: transcript.updated\ndata: {early.model_dump_json()}\n\n"
        'data: {"type": "something.new"}\n\n'
        f"id: 6-0\nevent: transcript.updated\ndata: {mine.model_dump_json()}\n\n"
    ).encode()
    feed = EventFeed(_url(sse_server), "tok")
    watcher = feed.watch("rec-2")
    feed.start(timeout_s=5)
    try:
        assert watcher.get(timeout=5) == mine.transcript
        # Arrived before anyone asked:
        assert feed.watch("rec-early").get(timeout=5) == early.transcript
    finally:
        feed.close()
    headers = {k.lower(): v for k, v in sse_server.seen_headers.items()}
    assert headers["authorization"] == "Bearer tok"
    ms, _, seq = headers["last-event-id"].partition("-")
    assert ms.isdigit() and seq == "0", "resumes from a moment before connecting"


def test_event_feed_reports_401_with_what_to_do(sse_server: _SseServer) -> None:
    sse_server.status = 401
    feed = EventFeed(_url(sse_server), None)
    with pytest.raises(GatewayError, match="WHISP_TOKEN") as caught:
        feed.start(timeout_s=5)
    assert caught.value.status == 401


def test_an_unreachable_gateway_says_how_to_start_it() -> None:
    from whisp_cli.redis_server import free_port

    client = GatewayClient(f"http://127.0.0.1:{free_port()}", None)
    with pytest.raises(GatewayError, match="whisp up") as caught:
        client.submit(b"RIFF", RecordingOptions())
    client.close()
    assert caught.value.code == "gateway_unreachable"


def _response(status: int, body: dict[str, object], **headers: str) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


def test_error_messages_are_actionable() -> None:
    limited = error_from(
        _response(429, {"code": "rate_limited", "message": "slow down"}, **{"Retry-After": "7"})
    )
    assert limited.status == 429 and "try again in 7 s" in str(limited)
    assert limited.code == "rate_limited"
    shared = {"code": "upload_too_large", "message": "max 25 MiB", "retryable": False}
    too_big = error_from(_response(413, shared))
    assert too_big.code == "upload_too_large" and "max 25 MiB" in str(too_big)
    assert "server problem" in str(error_from(_response(502, {"message": "audio down"})))


def test_settings_read_the_token_from_the_environment_only(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("cli:\n  initial_release_ms: 800\nhotkey_app:\n  press_mode: toggle\n")
    monkeypatch.setenv("WHISP_CONFIG", str(config))
    monkeypatch.setenv("WHISP_TOKEN", "secret-token")
    monkeypatch.setenv("WHISP_CLI__REPEAT_RELEASE_MS", "150")
    cli = CliSettings()
    assert cli.initial_release_ms == 800 and cli.repeat_release_ms == 150
    assert cli.token is not None and cli.token.get_secret_value() == "secret-token"
    assert HotkeySettings().press_mode == "toggle"
    config.write_text("cli:\n  token: in-the-file\n")
    with pytest.raises(ConfigError, match="secret"):
        CliSettings()


def test_terminal_bytes_decode_to_keys() -> None:
    keys = [e.key for e in decode(b"  \x1b[A\x7fq\x1b\x03", 1.0)]
    assert keys == [Key.SPACE, Key.SPACE, Key.OTHER, Key.QUIT, Key.OTHER, Key.QUIT, Key.QUIT]


def test_device_names_and_indexes() -> None:
    assert parse_device("3") == 3
    assert parse_device("pulse") == "pulse"
    assert parse_device(" ") is None


def test_meter_spans_minus_60_to_0_dbfs() -> None:
    assert meter(-100.0).plain.count("█") == 0
    assert meter(-30.0, width=20).plain.count("█") == 10
    assert meter(0.0, width=20).plain.count("█") == 20


def test_autostart_entry_honours_xdg_config_home(tmp_path: Path) -> None:
    env = {"XDG_CONFIG_HOME": str(tmp_path / "cfg"), "HOME": str(tmp_path / "home")}
    path = install_autostart(["/opt/bin/whisp", "hotkey", "--keys", "<ctrl>+<alt>+h"], env)
    assert path == tmp_path / "cfg" / "autostart" / "whisptt-hotkey.desktop"
    text = path.read_text()
    assert 'Exec=/opt/bin/whisp hotkey --keys "<ctrl>+<alt>+h"' in text
    assert "Type=Application" in text
    assert config_home({"XDG_CONFIG_HOME": "relative", "HOME": "/h"}) == Path("/h/.config")


def test_desktop_exec_quotes_as_the_spec_says() -> None:
    assert desktop_exec(["a b", 'q"$', "50%"]) == '"a b" "q\\"\\$" "50%%"'


def test_pid_file_lives_in_the_runtime_dir() -> None:
    assert pid_path({"XDG_RUNTIME_DIR": "/run/user/7"}) == Path("/run/user/7/whisptt-hotkey.pid")


@pytest.mark.parametrize(
    ("env", "kind"),
    [
        ({"DISPLAY": ":0"}, "x11"),
        ({"DISPLAY": ":0", "WAYLAND_DISPLAY": "wayland-0"}, "xwayland"),
        ({"WAYLAND_DISPLAY": "wayland-0"}, "wayland"),
        ({}, "none"),
    ],
)
def test_display_kind(env: dict[str, str], kind: str) -> None:
    assert display_kind(env) == kind


def test_the_capture_path_imports_no_server_framework() -> None:
    """`whisp record` / `whisp hotkey` must not drag FastAPI, uvicorn or the gateway in."""
    code = (
        "import sys, whisp_cli.main, whisp_cli.record.launch, whisp_cli.hotkey.launch\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'fastapi', 'uvicorn', 'starlette', 'whisp_gateway'})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_whisp_help_does_not_import_the_audio_stack() -> None:
    code = "import sys, whisp_cli.main; print('av' in sys.modules, 'numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"
