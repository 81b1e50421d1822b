"""Transcription workers as real processes (`python -m whisp_transcription`)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from whisp_cli.redis_server import free_port


@dataclass
class WorkerProcess:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def consumer_name(self) -> str:
        return f"{os.uname().nodename}-{self.process.pid}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_workers(
    count: int, redis_url: str, audio_dir: Path, log_dir: Path, **env: str
) -> list[WorkerProcess]:
    workers = []
    for i in range(count):
        port = free_port()
        log = log_dir / f"worker-{i}.log"
        process = subprocess.Popen(
            [sys.executable, "-m", "whisp_transcription"],
            env={
                **os.environ,
                "REDIS_URL": redis_url,
                "WHISP_TRANSCRIPTION__PORT": str(port),
                "WHISP_TRANSCRIPTION__AUDIO_DIR": str(audio_dir),
                **env,
            },
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        workers.append(WorkerProcess(process, port, log))
    wait_ready(workers)
    return workers


def wait_ready(workers: list[WorkerProcess], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    for worker in workers:
        while True:
            assert worker.process.poll() is None, worker.log.read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{worker.port}/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"worker not ready: {worker.log.read_text()}"
            time.sleep(0.1)
