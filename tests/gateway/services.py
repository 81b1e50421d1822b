"""The real audio and agent services behind a test gateway, each on real HTTP (uvicorn in a
thread, as the gateway itself runs), on the session's Redis. The agent service's model is
the chat stub (the local stand-in for an OpenAI-compatible server)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tests.agents.chat_stub import ChatStub
from tests.agents.conftest import make_settings
from tests.gateway.conftest import GatewayFactory, Served
from tests.gateway.server import serving
from tests.support.speech import write_wav
from whisp_agent.app import create_app as create_agent_app
from whisp_audio.app import create_app as create_audio_app
from whisp_audio.device_recordings import SourceFactory
from whisp_audio.settings import AudioSettings
from whisp_shared.bus import EventBus
from whisp_shared.config import BusSettings

AGENTS = """
agents:
  - id: helper
    instructions: Help.
  - id: cleanup
    instructions: Clean up dictation.
pipelines:
  - id: tidy
    stages: [cleanup, helper]
"""


@dataclass
class Stack:
    gateway: Served
    audio_url: str
    audio_dir: Path
    chat: ChatStub

    def audio_owners(self) -> list[str]:
        """The owner of every recording the audio service keeps (its metadata files)."""
        return [json.loads(p.read_text())["user_id"] for p in self.audio_dir.rglob("meta.json")]

    def audio_files(self) -> list[Path]:
        return [p for p in self.audio_dir.rglob("*") if p.is_file() and p.name != "meta.json"]


@contextmanager
def stack(
    gateway: GatewayFactory,
    bus_settings: BusSettings,
    tmp_path: Path,
    audio_sources: SourceFactory | None = None,
    **gateway_settings: object,
) -> Iterator[Stack]:
    """A gateway with the audio service and the agent service (and its chat stub) behind;
    `audio_sources` gives the audio service its device microphones (files played as
    microphones, `FileReplaySource`)."""
    audio_dir = tmp_path / "audio-data"
    audio = create_audio_app(
        AudioSettings(data_dir=audio_dir, retention_days=None),
        EventBus(bus_settings),
        source_factory=audio_sources,
    )
    with ChatStub() as chat:
        agent_settings = make_settings(tmp_path / "agent", chat.base_url, registry=AGENTS)
        agents = create_agent_app(agent_settings, EventBus(bus_settings))
        with (
            serving(audio) as audio_url,
            serving(agents) as agents_url,
            gateway(
                audio_service_url=audio_url, agent_service_url=agents_url, **gateway_settings
            ) as url,
        ):
            yield Stack(url, audio_url, audio_dir, chat)


def tone_wav(path: Path, seconds: float = 1.0) -> bytes:
    """A short 440 Hz tone: audio the audio service stores (nothing listens to it here)."""
    t = np.arange(int(seconds * 16_000)) / 16_000
    return write_wav(path, 0.3 * np.sin(2 * np.pi * 440 * t)).read_bytes()
