"""Every error code a WhisPTT service can put in an error body or a failure event.

Clients branch on these (the web page shows a hint per code, the CLI a message), so a code
is part of the contract: it is defined here once and nowhere else. The web page imports a
generated copy (`web/js/codes.js`, written by `python -m whisp_shared.codes`); a test
fails when the copy and this enum drift apart.

Events carry the code as a plain string, so a newer producer's code still parses in an
older consumer; producers always take it from this enum.
"""

from __future__ import annotations

import sys
from enum import StrEnum


class ErrorCode(StrEnum):
    # -- any request --------------------------------------------------------------------
    BAD_REQUEST = "bad_request"
    INVALID_REQUEST = "invalid_request"
    """A field, query parameter or header failed validation (422)."""
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    """Unknown and foreign ids get the same answer, so ids cannot be probed."""
    METHOD_NOT_ALLOWED = "method_not_allowed"
    CONFLICT = "conflict"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    RATE_LIMITED = "rate_limited"
    QUOTA_EXCEEDED = "quota_exceeded"
    """The user's audio seconds for today are used up; `Retry-After`: the next UTC midnight."""
    MISSING_USER = "missing_user"
    """A service call did not say which user it acts for (`X-Whisp-User`)."""
    INTERNAL_ERROR = "internal_error"
    UNAVAILABLE = "unavailable"

    # -- the bus ------------------------------------------------------------------------
    TRANSIENT_ERROR = "transient_error"
    PERMANENT_ERROR = "permanent_error"
    GAVE_UP = "gave_up"
    """A recording was delivered too often without finishing (its worker kept dying)."""

    # -- audio in -----------------------------------------------------------------------
    FILE_TOO_LARGE = "file_too_large"
    UPLOAD_TOO_LARGE = "upload_too_large"
    EMPTY_UPLOAD = "empty_upload"
    UNDECODABLE_AUDIO = "undecodable_audio"
    AUDIO_TOO_LONG = "audio_too_long"
    EMPTY_RECORDING = "empty_recording"
    UNKNOWN_DEVICE = "unknown_device"
    DEVICE_UNAVAILABLE = "device_unavailable"
    NOT_RECORDING = "not_recording"
    INVALID_TRANSITION = "invalid_transition"
    RECORDING_ENDED = "recording_ended"
    """A live recording was already committed or cancelled: it takes no more audio."""
    MAX_DURATION_REACHED = "max_duration_reached"
    """A live recording reached its maximum length: it was committed there, by itself."""
    CHUNK_TOO_LARGE = "chunk_too_large"
    """One piece of live audio is larger than the audio service takes at once."""
    BAD_AUDIO_CHUNK = "bad_audio_chunk"
    """Live audio that is not whole 16-bit samples (an odd number of bytes)."""

    # -- transcription ------------------------------------------------------------------
    BAD_AUDIO_URI = "bad_audio_uri"
    AUDIO_NOT_FOUND = "audio_not_found"
    AUDIO_UNAVAILABLE = "audio_unavailable"
    """The audio service cannot be reached (by a worker or by the gateway)."""
    AUDIO_FETCH_REFUSED = "audio_fetch_refused"
    AUDIO_TOO_LARGE = "audio_too_large"
    MODEL_NOT_AVAILABLE = "model_not_available"
    ENGINE_NOT_CONFIGURED = "engine_not_configured"
    TRANSCRIPTION_TIMEOUT = "transcription_timeout"
    LIVE_AUDIO_TIMEOUT = "live_audio_timeout"
    """A live recording's audio stopped coming, with neither a commit nor a cancel."""
    LIVE_NOT_SUPPORTED = "live_not_supported"
    """The worker's engine cannot stream (the OpenAI engine): upload the audio instead."""

    # -- model providers (OpenAI or a compatible server) --------------------------------
    UPSTREAM_UNAVAILABLE = "upstream_unavailable"
    UPSTREAM_RATE_LIMITED = "upstream_rate_limited"
    UPSTREAM_AUTH = "upstream_auth"
    UPSTREAM_BAD_REQUEST = "upstream_bad_request"
    UPSTREAM_BAD_RESPONSE = "upstream_bad_response"

    # -- agents -------------------------------------------------------------------------
    UNKNOWN_AGENT = "unknown_agent"
    AGENT_UNAVAILABLE = "agent_unavailable"
    """The agent service cannot be reached."""
    AGENT_CONFIG_ERROR = "agent_config_error"
    AGENT_ERROR = "agent_error"
    BAD_INPUT = "bad_input"
    INPUT_TOO_LONG = "input_too_long"
    GUARDRAIL_TRIPPED = "guardrail_tripped"
    MAX_TURNS_EXCEEDED = "max_turns_exceeded"

    # -- the gateway --------------------------------------------------------------------
    BAD_CURSOR = "bad_cursor"
    BAD_LAST_EVENT_ID = "bad_last_event_id"
    GATEWAY_STOPPING = "gateway_stopping"
    CONFIRMATION_REQUIRED = "confirmation_required"
    """An irreversible request (delete everything of mine) without its confirmation."""

    # -- the Realtime WebSocket (/v1/realtime): OpenAI's codes where it has them ---------
    UNSUPPORTED_INTENT = "unsupported_intent"
    """Only transcription sessions are served (`?intent=transcription`)."""
    FORBIDDEN_ORIGIN = "forbidden_origin"
    """A browser session cookie used from another site's page."""
    INVALID_JSON = "invalid_json"
    UNKNOWN_EVENT = "unknown_event"
    INVALID_EVENT = "invalid_event"
    """A known event type with a missing or wrong field."""
    INVALID_AUDIO = "invalid_audio"
    """`audio` is not base64, or not whole 16-bit samples."""
    UNSUPPORTED_FORMAT = "unsupported_format"
    FORMAT_CHANGE_MID_ITEM = "format_change_mid_item"
    UNSUPPORTED_TURN_DETECTION = "unsupported_turn_detection"
    """Only push-to-talk (`turn_detection: null`, commit on release) is served."""
    INPUT_AUDIO_BUFFER_COMMIT_EMPTY = "input_audio_buffer_commit_empty"

    # -- the Wyoming server (Home Assistant); also INVALID_EVENT, UNKNOWN_EVENT, ... ------
    INVALID_FRAME = "invalid_frame"
    """A frame that cannot be read (not a JSON header, wrong lengths): the connection
    closes, since nothing after it can be trusted to start where it should."""
    EVENT_TOO_LARGE = "event_too_large"
    """A header, data or payload longer than `web.wyoming.max_event_bytes`: it closes too."""
    CLIENT_NOT_ALLOWED = "client_not_allowed"
    """The client's address is not in `web.wyoming.allow`."""
    WYOMING_USER_NOT_CONFIGURED = "wyoming_user_not_configured"
    """The gateway has users but `web.wyoming.user` names none of them to own transcripts."""
    IDLE_TIMEOUT = "idle_timeout"
    """Nothing arrived for `web.wyoming.idle_timeout_s`: the connection closes."""

    # -- desk clients (said by the CLI itself, never by a server) ------------------------
    GATEWAY_UNREACHABLE = "gateway_unreachable"


def render_js() -> str:
    """The page's copy: an ES module with one frozen object of every code."""
    lines = [
        "// Generated by `python -m whisp_shared.codes` from whisp_shared/codes.py: do not edit.",
        "// Every error code the servers can send; the page branches on these names only.",
        "export const Code = Object.freeze({",
        *(f'  {code.name}: "{code.value}",' for code in ErrorCode),
        "});",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.stdout.write(render_js())
