"""The agent service's error taxonomy: one class per thing a caller can act on.

Each error has a stable `code` (the `AgentFailed.code` on the bus and the JSON `code` on
REST), an HTTP status, and whether a retry may help (the bus re-delivers retryable ones).
`translate()` turns whatever the SDK or the OpenAI client raised into one of these, so no
route or consumer has to know about SDK exception types.
"""

from __future__ import annotations

import math
from typing import Any

import openai
from agents import (
    AgentsException,
    InputGuardrailTripwireTriggered,
    MaxTurnsExceeded,
    ModelBehaviorError,
    ModelTimeoutError,
    OutputGuardrailTripwireTriggered,
    UserError,
)

from whisp_shared.errors import WhispError
from whisp_shared.retry import retry_after_seconds


class AgentError(WhispError):
    status: int = 500
    retry_after: float | None = None

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        retryable: bool | None = None,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, code=code, retryable=retryable)
        if status is not None:
            self.status = status
        if retry_after is not None:
            self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        if self.retry_after is None:
            return {}
        return {"Retry-After": str(max(1, math.ceil(self.retry_after)))}

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "retryable": self.retryable}


class UnknownAgent(AgentError):
    code, status = "unknown_agent", 404


class AgentConfigError(AgentError):
    """The agent exists but cannot run as configured (e.g. its provider has no API key)."""

    code, status = "agent_config_error", 422


class BadInput(AgentError):
    code, status = "bad_input", 422


class GuardrailTripped(AgentError):
    code, status = "guardrail_tripped", 422


class MaxTurns(AgentError):
    """The agent kept calling tools or handing off without answering."""

    code, status = "max_turns_exceeded", 502


class UpstreamRateLimited(AgentError):
    code, status, retryable = "upstream_rate_limited", 429, True


class UpstreamUnavailable(AgentError):
    code, status, retryable = "upstream_unavailable", 503, True


class UpstreamRejected(AgentError):
    """Retrying cannot help: bad key, unknown model, a request the model server refuses."""

    code, status = "upstream_bad_request", 502


class UpstreamBadResponse(AgentError):
    code, status = "upstream_bad_response", 502


def translate(exc: BaseException, provider: str = "the model provider") -> AgentError:  # noqa: PLR0911 - one branch per exception family
    """The AgentError for anything a run raised (AgentErrors pass through)."""
    if isinstance(exc, AgentError):
        return exc
    if isinstance(exc, InputGuardrailTripwireTriggered):
        info = exc.guardrail_result.output.output_info
        return GuardrailTripped(f"input refused by a guardrail: {info}")
    if isinstance(exc, OutputGuardrailTripwireTriggered):
        info = exc.guardrail_result.output.output_info
        return GuardrailTripped(f"answer withheld by a guardrail: {info}")
    if isinstance(exc, MaxTurnsExceeded):
        return MaxTurns(f"the agent did not finish within its turn limit ({exc.message})")
    if isinstance(exc, openai.APIStatusError):
        return _status_error(exc, provider)
    if isinstance(exc, openai.APITimeoutError | ModelTimeoutError):
        return UpstreamUnavailable(f"{provider} timed out; try again later", retry_after=5)
    if isinstance(exc, openai.APIConnectionError):
        return UpstreamUnavailable(f"{provider} is unreachable; try again later", retry_after=5)
    if isinstance(exc, ModelBehaviorError | openai.APIResponseValidationError):
        return UpstreamBadResponse(f"{provider} sent an answer that could not be used: {exc}")
    if isinstance(exc, UserError):
        return AgentConfigError(f"the agent is misconfigured: {exc}")
    if isinstance(exc, AgentsException):
        return AgentError(f"agent run failed: {exc}", code="agent_error")
    return UpstreamBadResponse(
        f"{provider} sent an answer that could not be used ({type(exc).__name__}: {exc})"
    )


def _status_error(exc: openai.APIStatusError, provider: str) -> AgentError:
    status, said = exc.status_code, _server_message(exc)
    if status == 429:
        wait = retry_after_seconds(exc.response.headers)
        return UpstreamRateLimited(
            f"{provider} is rate-limiting (HTTP 429): {said}", retry_after=wait or 10
        )
    if status >= 500 or status == 408:
        return UpstreamUnavailable(
            f"{provider} failed (HTTP {status}): {said}",
            retry_after=retry_after_seconds(exc.response.headers) or 5,
        )
    if status in (401, 403):
        return UpstreamRejected(
            f"{provider} refused the credentials (HTTP {status}); check its API key",
            code="upstream_auth",
        )
    return UpstreamRejected(f"{provider} rejected the request (HTTP {status}): {said}")


def _server_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])[:300]
    return str(body)[:300] if body else exc.message[:300]
