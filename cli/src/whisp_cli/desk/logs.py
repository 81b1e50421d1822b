"""Logging for the desk tools: warnings only, plain text, on stderr.

The recorder core logs at debug/info for the services' JSON logs; in a person's terminal
those lines would tear through the live view, so only what needs attention is shown.
"""

from __future__ import annotations

import logging
import sys

from whisp_shared.config import LoggingSettings
from whisp_shared.logs import configure_logging


def quiet_logging(service: str) -> None:
    configure_logging(service, LoggingSettings(level="WARNING", json_logs=False))
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(sys.stderr)
