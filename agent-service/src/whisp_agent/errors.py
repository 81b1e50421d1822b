"""The agent service's error taxonomy: one class per thing a caller can act on.

Each class is a shared `WhispError` with its stable `ErrorCode` (the `AgentFailed.code` on
the bus and the JSON `code` on REST), its HTTP status, and whether a retry may help (the bus
re-delivers retryable ones); the shared handler renders it, `Retry-After` included.
`translate()` turns whatever the SDK or the OpenAI client raised into one of these, so no
route or consumer has to know about SDK exception types.
"""

from __future__ import annotations

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

from whisp_shared.codes import ErrorCode
from whisp_shared.errors import WhispError
from whisp_shared.retry import retry_after_seconds
from whisp_shared.upstream import (
    UpstreamAuth,
    UpstreamBadRequest,
    UpstreamBadResponse,
    UpstreamRateLimited,
    UpstreamUnavailable,
    server_message,
)


class AgentError(WhispError):
    """Base of the taxonomy: a run that failed for a reason no subclass names."""

    code = ErrorCode.AGENT_ERROR


class UnknownAgent(AgentError):
    code, status = ErrorCode.UNKNOWN_AGENT, 404


class AgentConfigError(AgentError):
    """The agent exists but cannot run as configured (e.g. its provider has no API key)."""

    code, status = ErrorCode.AGENT_CONFIG_ERROR, 422


class BadInput(AgentError):
    code, status = ErrorCode.BAD_INPUT, 422


class InputTooLong(BadInput):
    code, status = ErrorCode.INPUT_TOO_LONG, 413


class GuardrailTripped(AgentError):
    code, status = ErrorCode.GUARDRAIL_TRIPPED, 422


class MaxTurns(AgentError):
    """The agent kept calling tools or handing off without answering."""

    code, status = ErrorCode.MAX_TURNS_EXCEEDED, 502


def translate(exc: BaseException, provider: str = "the model provider") -> WhispError:  # noqa: PLR0911 - one branch per exception family
    """The WhispError for anything a run raised (WhispErrors pass through): this service's
    own, or a provider failure from `whisp_shared.upstream`."""
    if isinstance(exc, WhispError):
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
        return AgentError(f"agent run failed: {exc}")
    return UpstreamBadResponse(
        f"{provider} sent an answer that could not be used ({type(exc).__name__}: {exc})"
    )


def _status_error(exc: openai.APIStatusError, provider: str) -> WhispError:
    status, said = exc.status_code, server_message(exc.body, exc.message)
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
    if exc.code == "context_length_exceeded":  # OpenAI's code; llama.cpp's server uses it too
        return InputTooLong(f"the input does not fit the context of {provider}: {said}")
    if status in (401, 403):
        return UpstreamAuth(
            f"{provider} refused the credentials (HTTP {status}); check its API key"
        )
    return UpstreamBadRequest(f"{provider} rejected the request (HTTP {status}): {said}")
