"""A private PulseAudio server for capture tests: a null sink `vsink` (16 kHz mono) whose
monitor feeds a virtual source `vmic`, both defaults. What is played into `vsink` with
paplay is what a microphone on `vmic` (PortAudio's ALSA `pulse` device) records.

Runs in the foreground as our own child process (no -D), so it is stopped by its pid
and never outlives the test session. `norewinds=1` keeps the first ~20 ms of a clip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

CONFIG = """\
load-module module-native-protocol-unix auth-anonymous=1 socket={socket}
load-module module-null-sink sink_name=vsink rate=16000 channels=1 norewinds=1
load-module module-virtual-source source_name=vmic master=vsink.monitor
set-default-sink vsink
set-default-source vmic
"""


def available() -> str | None:
    """Why capture tests cannot run here, or None if they can."""
    missing = [tool for tool in ("pulseaudio", "paplay", "pactl") if not shutil.which(tool)]
    if missing:
        return f"missing {', '.join(missing)} (see scripts/system-packages.txt)"
    return None


class PulseServer:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.runtime = folder / "run"
        self.socket = self.runtime / "native"
        self.log = folder / "pulseaudio.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def server(self) -> str:
        return f"unix:{self.socket}"

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "PULSE_SERVER": self.server}

    def start(self, timeout: float = 15.0) -> PulseServer:
        self.runtime.mkdir(parents=True, exist_ok=True)
        config = self.folder / "pulse.pa"
        config.write_text(CONFIG.format(socket=self.socket))
        self.process = subprocess.Popen(
            ["pulseaudio", "-n", "-F", str(config), "--exit-idle-time=-1",
             "--daemonize=no", "--use-pid-file=no", "--log-target=stderr"],
            env={**os.environ, "XDG_RUNTIME_DIR": str(self.runtime), "HOME": str(self.folder)},
            stdout=subprocess.DEVNULL,
            stderr=self.log.open("ab"),
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while self.pactl("info").returncode != 0:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"PulseAudio did not start: {self.log.read_text()[-2000:]}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def pactl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["pactl", *args], env=self.env, capture_output=True, text=True, timeout=10, check=False
        )

    def play(self, wav: Path) -> None:
        """Play `wav` into the null sink; returns when paplay has written it all."""
        subprocess.run(
            ["paplay", "--device=vsink", str(wav)], env=self.env, check=True, timeout=120
        )

    def record_streams(self) -> int:
        """Client record streams open on the server (the virtual source's own is not one)."""
        out = self.pactl("list", "source-outputs", "short").stdout
        return sum("protocol-native" in line for line in out.splitlines())
