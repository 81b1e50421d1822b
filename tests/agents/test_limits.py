"""How long a dictation may be: one limit that fits the local model's context, and the
model's own "too long" answer mapped to the same stable code."""

from __future__ import annotations

import httpx2  # the HTTP library the openai client is built on
import openai
import pytest
from pydantic import ValidationError

from whisp_agent.errors import InputTooLong, translate
from whisp_agent.settings import AgentSettings, LocalLLMSettings
from whisp_shared.codes import ErrorCode


def test_the_default_limit_fits_a_five_minute_dictation_and_the_context() -> None:
    settings = AgentSettings()
    assert settings.max_input_chars >= 4300  # ~750 words: 5 minutes at 150 words a minute
    assert settings.local_llm.n_ctx == 4096


def test_a_limit_the_local_context_cannot_hold_is_refused_at_load() -> None:
    with pytest.raises(ValidationError, match="lower max_input_chars to"):
        AgentSettings(max_input_chars=20_000)
    assert AgentSettings(max_input_chars=20_000, local_llm=LocalLLMSettings(n_ctx=12_288))
    assert AgentSettings(max_input_chars=20_000, default_provider="openai")


def test_the_servers_context_length_error_is_input_too_long() -> None:
    request = httpx2.Request("POST", "http://local/v1/chat/completions")
    body = {"message": "This model's maximum context length is 4096 tokens.",
            "code": "context_length_exceeded", "type": "invalid_request_error"}  # fmt: skip
    response = httpx2.Response(400, request=request, json={"error": body})
    error = translate(openai.BadRequestError("too long", response=response, body=body), "local")
    assert isinstance(error, InputTooLong)
    assert (error.code, error.status) == (ErrorCode.INPUT_TOO_LONG, 413)
    assert "4096 tokens" in error.message
