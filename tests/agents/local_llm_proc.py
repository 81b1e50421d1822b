"""The real offline model server (`python -m whisp_agent.local_llm`) as a test process."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from tests.support.processes import Services, service
from whisp_cli.redis_server import free_port

READY_TIMEOUT_S = 300
"""Loading is seconds; the first start on a machine also joins the model's parts (~1 GB)."""


class LocalLLM:
    """Starts the server on a free port, waits for /readyz (model loaded and warm), stops
    its process group. `env` adds settings (`WHISP_AGENTS__LOCAL_LLM__MODEL=…`)."""

    def __init__(self, log: Path | None = None, env: Mapping[str, str] | None = None) -> None:
        assert log is None or log.suffix == ".log", log
        self.port = free_port()
        self.log = log
        self.env = dict(env or {})
        self.ready_s = 0.0
        self.pid = 0
        self._services: Services | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> LocalLLM:
        if self.log is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="whisp-local-llm-")
            log = Path(self._tmp.name) / "local-llm.log"
        else:
            log = self.log
        spec = service("local-llm", name=log.stem, port=self.port, env=self.env)
        try:
            self._services = Services(
                [spec], log_dir=log.parent, ready_timeout=READY_TIMEOUT_S, stop_timeout=15
            ).start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        self.ready_s = self._services.ready_s
        self.pid = self._services[spec.name].pid
        return self

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        if self._services is not None:
            self._services.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
