"""Logs are JSON lines, for our loggers and stdlib ones alike, carrying the event's ids."""

from __future__ import annotations

import json
import logging

import pytest

from whisp_shared.config import LoggingSettings
from whisp_shared.events import RecordingCompleted
from whisp_shared.logs import configure_logging, event_context, get_logger


def test_structlog_and_stdlib_lines_are_json_with_bound_ids(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("test-service", LoggingSettings(level="INFO", json_logs=True))
    event = RecordingCompleted(recording_id="rec-9", user_id="u", audio_uri="x")
    with event_context(event):
        get_logger("ours").info("handled", extra_field=1)
        logging.getLogger("uvicorn.error").warning("library says %s", "hi")
    get_logger("ours").info("outside")

    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    ours, library, outside = lines[-3:]
    assert ours["event"] == "handled" and ours["trace_id"] == event.trace_id
    assert ours["recording_id"] == "rec-9" and ours["service"] == "test-service"
    assert library["event"] == "library says hi" and library["recording_id"] == "rec-9"
    assert library["level"] == "warning"
    assert "recording_id" not in outside
