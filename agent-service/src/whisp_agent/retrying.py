"""The one retry layer: tenacity around each *model call*, nowhere else.

The OpenAI client is built with `max_retries=0` and the SDK's `ModelSettings.retry` is left
unset, so a request is sent exactly as many times as this module says. Retrying per model
call (not per run) matters: a run may already have called tools (written a note) before a
later model call fails, and retrying the whole run would do that again.

- 429: wait what `Retry-After`/`retry-after-ms` asks; if that is longer than the provider's
  `max_backoff_s`, give up at once and let the caller see 429 with the server's Retry-After
  (holding a request open for a minute helps nobody).
- 408, 5xx, timeouts, connection errors: exponential backoff with jitter.
- Anything else (401, 400, a malformed body): no retry.
A stream is retried only until its first event; after that the caller has seen output.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import openai
import tenacity
from agents import Model, ModelResponse, ModelSettings, ModelTracing, Tool
from agents.agent_output import AgentOutputSchemaBase
from agents.handoffs import Handoff
from agents.items import TResponseInputItem, TResponseStreamEvent
from openai.types.responses.response_prompt_param import ResponsePromptParam
from prometheus_client import Counter
from tenacity import RetryCallState

from whisp_agent.errors import translate
from whisp_shared.logs import get_logger
from whisp_shared.retry import retry_after_seconds

log = get_logger(__name__)

RETRIES = Counter(
    "whisp_agent_upstream_retries_total",
    "Model calls sent again after a transient upstream failure.",
    ["provider", "reason"],
)


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3
    max_backoff_s: float = 20.0
    initial_backoff_s: float = 0.5


def _reason(exc: BaseException) -> str:
    if isinstance(exc, openai.APIStatusError):
        return str(exc.status_code)
    return type(exc).__name__


class RetryingModel(Model):
    """Wraps any SDK `Model` (normally `OpenAIChatCompletionsModel`) with the retry policy and
    turns what finally escapes into the service's `AgentError`s."""

    def __init__(self, inner: Model, provider: str, policy: RetryPolicy) -> None:
        self.inner = inner
        self.provider = provider
        self.policy = policy
        self._backoff = tenacity.wait_exponential_jitter(
            multiplier=policy.initial_backoff_s,
            max=policy.max_backoff_s,
            jitter=policy.initial_backoff_s,
        )

    def _retryable(self, exc: BaseException) -> bool:
        if isinstance(exc, openai.RateLimitError):
            asked = retry_after_seconds(exc.response.headers)
            return asked is None or asked <= self.policy.max_backoff_s
        if isinstance(exc, openai.APIStatusError):
            return exc.status_code == 408 or exc.status_code >= 500
        return isinstance(exc, openai.APIConnectionError)  # timeouts included

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, openai.APIStatusError):
            asked = retry_after_seconds(exc.response.headers)
            if asked is not None:
                return min(asked, self.policy.max_backoff_s)
        return float(self._backoff(state))

    def _before_sleep(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        reason = _reason(exc) if exc else "unknown"
        RETRIES.labels(self.provider, reason).inc()
        log.warning(
            "model_call_retry",
            provider=self.provider,
            attempt=state.attempt_number,
            max_attempts=self.policy.max_attempts,
            reason=reason,
            wait_s=round(state.next_action.sleep, 3) if state.next_action else None,
        )

    def _retrying(self) -> tenacity.AsyncRetrying:
        return tenacity.AsyncRetrying(
            stop=tenacity.stop_after_attempt(self.policy.max_attempts),
            wait=self._wait,
            retry=tenacity.retry_if_exception(self._retryable),
            before_sleep=self._before_sleep,
            reraise=True,
        )

    async def get_response(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        model_settings: ModelSettings,
        tools: list[Tool],
        output_schema: AgentOutputSchemaBase | None,
        handoffs: list[Handoff],
        tracing: ModelTracing,
        *,
        previous_response_id: str | None,
        conversation_id: str | None,
        prompt: ResponsePromptParam | None,
    ) -> ModelResponse:
        try:
            async for attempt in self._retrying():
                with attempt:
                    return await self.inner.get_response(
                        system_instructions,
                        input,
                        model_settings,
                        tools,
                        output_schema,
                        handoffs,
                        tracing,
                        previous_response_id=previous_response_id,
                        conversation_id=conversation_id,
                        prompt=prompt,
                    )
        except Exception as exc:
            raise translate(exc, self._name()) from exc
        raise AssertionError("unreachable: tenacity either returns or raises")

    async def stream_response(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        model_settings: ModelSettings,
        tools: list[Tool],
        output_schema: AgentOutputSchemaBase | None,
        handoffs: list[Handoff],
        tracing: ModelTracing,
        *,
        previous_response_id: str | None,
        conversation_id: str | None,
        prompt: ResponsePromptParam | None,
    ) -> AsyncIterator[TResponseStreamEvent]:
        stream: AsyncIterator[TResponseStreamEvent] | None = None
        first: TResponseStreamEvent | None = None
        try:
            async for attempt in self._retrying():
                with attempt:
                    stream = self.inner.stream_response(
                        system_instructions,
                        input,
                        model_settings,
                        tools,
                        output_schema,
                        handoffs,
                        tracing,
                        previous_response_id=previous_response_id,
                        conversation_id=conversation_id,
                        prompt=prompt,
                    )
                    first = await anext(stream, None)
            if stream is None or first is None:
                return
            yield first
            async for event in stream:
                yield event
        except Exception as exc:
            raise translate(exc, self._name()) from exc

    async def close(self) -> None:
        await self.inner.close()

    def _name(self) -> str:
        return f"model provider '{self.provider}'"
