"""Config: per-section YAML, env overrides, secrets only from the environment."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from whisp_agent.settings import AgentSettings
from whisp_gateway.settings import GatewaySettings
from whisp_shared.config import BusSettings, ConfigError
from whisp_transcription.settings import TranscriptionSettings


@pytest.fixture
def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def write(text: str) -> Path:
        path = tmp_path / "config.yaml"
        path.write_text(text)
        monkeypatch.setenv("WHISP_CONFIG", str(path))
        return path

    for var in ("REDIS_URL", "WHISP_MODE", "WHISP_WEB__SESSION_SECRET"):
        monkeypatch.delenv(var, raising=False)
    return write


def test_each_service_reads_its_own_section(config_file) -> None:
    config_file("transcription:\n  port: 9100\n  max_concurrency: 3\nweb:\n  port: 9200\n")
    assert TranscriptionSettings().port == 9100
    assert TranscriptionSettings().max_concurrency == 3
    assert GatewaySettings().port == 9200


def test_a_broken_section_does_not_stop_other_services(config_file) -> None:
    config_file("transcription:\n  no_such_key: 1\nweb:\n  port: 9200\n")
    assert GatewaySettings().port == 9200
    with pytest.raises(ValidationError, match="no_such_key"):
        TranscriptionSettings()


@pytest.mark.parametrize(
    ("settings_cls", "yaml_text", "path"),
    [
        (
            TranscriptionSettings,
            "transcription:\n  faster_whisper:\n    short_window:\n      timestamps: false\n",
            "faster_whisper.short_window.timestamps",
        ),
        (TranscriptionSettings, "transcription:\n  openai:\n    modle: x\n", "openai.modle"),
        (GatewaySettings, "web:\n  quota:\n    seconds: 60\n", "quota.seconds"),
        (AgentSettings, "agents:\n  local_llm:\n    n_thread: 2\n", "local_llm.n_thread"),
    ],
)
def test_a_misspelt_nested_key_fails_with_its_path(
    config_file, settings_cls: type, yaml_text: str, path: str
) -> None:
    """A typo one table down must not silently keep the default."""
    config_file(yaml_text)
    with pytest.raises(ValidationError, match=re.escape(path)):
        settings_cls()


def test_a_misspelt_nested_env_override_fails_too(config_file, monkeypatch) -> None:
    config_file("")
    monkeypatch.setenv("WHISP_TRANSCRIPTION__FASTER_WHISPER__BEAM", "5")
    with pytest.raises(ValidationError, match=re.escape("faster_whisper.beam")):
        TranscriptionSettings()


def test_env_overrides_file_with_prefix_and_nesting(config_file, monkeypatch) -> None:
    config_file("transcription:\n  port: 9100\n")
    monkeypatch.setenv("WHISP_TRANSCRIPTION__PORT", "9300")
    assert TranscriptionSettings().port == 9300


def test_redis_url_env_wins_over_file(config_file, monkeypatch) -> None:
    config_file("bus:\n  redis_url: redis://file-host:6379/0\n")
    assert BusSettings().redis_url == "redis://file-host:6379/0"
    monkeypatch.setenv("REDIS_URL", "redis://env-host:6380/0")
    assert BusSettings().redis_url == "redis://env-host:6380/0"


def test_missing_file_falls_back_to_embedded_defaults(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("WHISP_CONFIG", str(tmp_path / "absent.yaml"))
    assert GatewaySettings().port == 8000


def test_secret_in_yaml_is_refused(config_file) -> None:
    config_file("agents:\n  openai_api_key: sk-live-abc\n")
    with pytest.raises(ConfigError, match=r"agents\.openai_api_key is a secret"):
        AgentSettings()


def test_placeholder_secret_refused_in_production_only(config_file, monkeypatch) -> None:
    config_file("mode: production\n")
    with pytest.raises(ValidationError, match="session_secret is a placeholder"):
        GatewaySettings()
    monkeypatch.setenv("WHISP_WEB__SESSION_SECRET", "a-real-long-random-value")
    assert GatewaySettings().session_secret.get_secret_value() == "a-real-long-random-value"
    config_file("mode: local\n")
    monkeypatch.delenv("WHISP_WEB__SESSION_SECRET")
    assert GatewaySettings().mode == "local"


def test_secrets_do_not_leak_into_repr(config_file, monkeypatch) -> None:
    config_file("")
    monkeypatch.setenv("WHISP_AGENTS__OPENAI_API_KEY", "sk-very-secret")
    settings = AgentSettings()
    assert "sk-very-secret" not in repr(settings)
    assert "sk-very-secret" not in settings.model_dump_json()


def test_unsafe_yaml_is_rejected(config_file) -> None:
    config_file("web: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(Exception, match="python/object"):
        GatewaySettings()


def test_repo_config_yaml_loads_for_every_service(monkeypatch) -> None:
    monkeypatch.setenv("WHISP_CONFIG", str(Path(__file__).resolve().parents[2] / "config.yaml"))
    for settings_cls in (BusSettings, TranscriptionSettings, GatewaySettings, AgentSettings):
        settings_cls()


def test_one_shared_service_token_reaches_every_service(config_file, monkeypatch) -> None:
    from whisp_audio.settings import AudioSettings

    config_file("")
    monkeypatch.setenv("WHISP_SERVICE_TOKEN", "shared-token-123")
    assert AudioSettings().service_token.get_secret_value() == "shared-token-123"
    assert GatewaySettings().service_token.get_secret_value() == "shared-token-123"
    assert TranscriptionSettings().audio_service_token.get_secret_value() == "shared-token-123"
    agents = AgentSettings()
    assert agents.service_token.get_secret_value() == "shared-token-123"
    assert agents.gateway_token.get_secret_value() == "shared-token-123"
    monkeypatch.setenv("WHISP_AUDIO__SERVICE_TOKEN", "audio-only")
    assert AudioSettings().service_token.get_secret_value() == "audio-only"
