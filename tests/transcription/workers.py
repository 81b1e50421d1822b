"""Transcription workers as real processes (`python -m whisp_transcription`)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from tests.support.processes import ServiceProcess, Services, service


@dataclass(frozen=True)
class WorkerProcess(ServiceProcess):
    @property
    def consumer_name(self) -> str:
        return f"{os.uname().nodename}-{self.process.pid}"


def start_workers(
    count: int, redis_url: str, audio_dir: Path, log_dir: Path, **env: str
) -> list[WorkerProcess]:
    """`count` workers on `redis_url`, ready; LOG_DIR/worker-N.log; the caller stops each."""
    specs = [
        service(
            "transcription",
            name=f"worker-{i}",
            env={"WHISP_TRANSCRIPTION__AUDIO_DIR": str(audio_dir), **env},
        )
        for i in range(count)
    ]
    workers = Services(specs, log_dir=log_dir, redis_url=redis_url, stop_timeout=30).start()
    return [WorkerProcess(w.spec, w.process, w.log, w.stop_timeout) for w in workers]
