"""The real offline model server (`python -m whisp_agent.local_llm`) as a test process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx

from whisp_cli.redis_server import free_port


class LocalLLM:
    """Starts the server on a free port, waits for /readyz, stops it by its PID."""

    def __init__(self, log: Path | None = None) -> None:
        self.port = free_port()
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready_s = 0.0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> LocalLLM:
        env = {**os.environ, "WHISP_AGENTS__LOCAL_LLM__PORT": str(self.port),
               "WHISP_AGENTS__LOCAL_LLM__HOST": "127.0.0.1"}  # fmt: skip
        out = self.log.open("ab") if self.log else subprocess.DEVNULL
        started = time.monotonic()
        self.proc = subprocess.Popen([sys.executable, "-m", "whisp_agent.local_llm"], env=env,
                                     stdout=out, stderr=subprocess.STDOUT,
                                     start_new_session=True)  # fmt: skip
        deadline = started + 120
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.__exit__(None, None, None)
                raise RuntimeError("the local LLM server did not become ready")
            time.sleep(0.2)
        self.ready_s = time.monotonic() - started
        return self

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
