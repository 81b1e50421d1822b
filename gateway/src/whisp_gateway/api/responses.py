"""What the gateway's routes answer when they refuse or fail, documented once.

Every route lists each error status it can return, with the shared error model: `ErrorBody`
(`{code, message, retryable}`), or `OpenAIErrorBody` under `/v1`. The statuses are listed one
by one rather than as `4XX`/`5XX` ranges, so the OpenAPI tells a client exactly what to
expect, and a contract test (schemathesis' `status_code_conformance`) fails when a route
starts answering a status nobody documented.

Errors are always JSON, whatever a route answers on success (SSE, CSV, plain text), so each
entry names `application/json` itself: FastAPI would otherwise file an error `model` under
the route's own media type (`text/event-stream` for `/api/events`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from whisp_shared.http_errors import ErrorBody, OpenAIErrorBody

Responses = dict[int | str, dict[str, Any]]

WHY: dict[int, str] = {
    400: "`bad_request` (e.g. a body that cannot be parsed at all), or a code naming what is "
    "wrong (`bad_cursor`, `bad_last_event_id`, …)",
    401: "`unauthorized`: no credentials, an unknown API token or an expired session "
    "(`WWW-Authenticate: Bearer`)",
    404: "`not_found`: unknown, or someone else's (the same answer, so ids cannot be probed)",
    413: "`upload_too_large`, `file_too_large` or `audio_too_long`",
    415: "`unsupported_media_type`: not an audio format the service reads",
    422: "`invalid_request` (a field, query parameter or header failed validation), or a code "
    "naming what is wrong",
    429: "`rate_limited` (this gateway) or `upstream_rate_limited` (the model provider); "
    "honour `Retry-After`",
    500: "`internal_error`: a bug on our side; it has been logged",
    502: "a service or model provider behind the gateway answered something unusable "
    "(`upstream_*`, `max_turns_exceeded`, …)",
    503: "a service behind the gateway cannot be reached (`audio_unavailable`, "
    "`agent_unavailable`, `upstream_unavailable`, `gateway_stopping`); retry, honour "
    "`Retry-After`",
    504: "`transcription_timeout`: not transcribed in time; it will still reach the history",
}
"""The default description of each status (a route may say more about its own)."""

SIGNED_IN = (401, 500)
"""Any route behind `CurrentUser`."""
LIMITED = (*SIGNED_IN, 429)
"""Any route behind `LimitedUser` (uploads, agent runs)."""
UPLOAD = (*LIMITED, 400, 413, 415, 422, 502, 503)
"""A file handed on to the audio service: its refusals pass through with their codes."""
AGENT = (*SIGNED_IN, 502, 503)
"""A request handed on to the agent service (its own refusals pass through)."""
JSON_BODY = (400, 422)
"""A route that reads a JSON body: 400 when it cannot be parsed at all (not UTF-8), 422 when
it is not JSON or not the expected shape."""
AGENT_RUN = (*AGENT, *LIMITED, *JSON_BODY, 404, 413)
"""An agent run: unknown agent (404), input too long (413), bad input, guardrail (422)."""


def _schema(model: type[ErrorBody] | type[OpenAIErrorBody]) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def errors(
    *statuses: int,
    openai: bool = False,
    notes: Mapping[int, str] | None = None,
    streaming: bool = False,
) -> Responses:
    """`responses=` for a route or router: each status with its description (`notes` win)
    and the error model (OpenAI's shape with `openai=True`), always as application/json.

    `streaming=True` for a route whose response class names another media type
    (`EventSourceResponse`): FastAPI would also file a `model` under that media type, so
    only the reference is given (the model is in the components through the JSON routes,
    which all carry it)."""
    model = OpenAIErrorBody if openai else ErrorBody
    notes = notes or {}
    responses: Responses = {}
    for status in sorted(set(statuses) | set(notes)):
        entry: dict[str, Any] = {
            "description": notes[status] if status in notes else WHY[status],
            "content": {"application/json": {"schema": _schema(model)}},
        }
        if not streaming:
            entry["model"] = model  # registers the schema in the components
        responses[status] = entry
    return responses
