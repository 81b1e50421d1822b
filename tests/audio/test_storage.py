"""Storage: ids that cannot name a path, atomic writes, retention by age and by size."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from whisp_audio.storage import (
    INCOMING,
    InvalidRecordingId,
    RecordingStore,
    check_id,
    new_recording_id,
)

HOSTILE_IDS = [
    "",
    ".",
    "..",
    "../../etc/passwd",
    "..%2F..%2Fetc%2Fpasswd",
    "/etc/passwd",
    "ab/" + "0" * 29,
    "0" * 31,
    "0" * 33,
    "A" * 32,  # uppercase hex is not what we make
    "0" * 31 + ".",
    "0" * 30 + "/.",
    "\x00" * 32,
    "g" * 32,
    "\u0663" * 32,  # Arabic-Indic digit three: \\d would take it, [0-9] does not
    "0" * 32 + "\n",
]


@pytest.fixture
def store(tmp_path: Path) -> RecordingStore:
    return RecordingStore(tmp_path / "data")


def save(store: RecordingStore, user: str = "alice", wav: bytes = b"w" * 100, **kw) -> str:
    rid = new_recording_id()
    store.save(rid, user_id=user, wav=wav, duration_s=1.0, source="upload", **kw)
    return rid


def test_made_ids_pass_the_check() -> None:
    ids = {new_recording_id() for _ in range(1000)}
    assert len(ids) == 1000
    for rid in ids:
        assert check_id(rid) == rid


@pytest.mark.parametrize("bad", HOSTILE_IDS, ids=repr)
def test_hostile_ids_never_reach_the_disk(store: RecordingStore, tmp_path: Path, bad: str) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("not yours")
    (tmp_path / "data").mkdir()
    with pytest.raises(InvalidRecordingId):
        check_id(bad)
    assert store.get(bad) is None
    assert store.delete(bad) is False
    with pytest.raises(InvalidRecordingId):
        store.save(bad, user_id="x", wav=b"", duration_s=0, source="upload")
    assert secret.read_text() == "not yours"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "secret.txt"]
    assert list((tmp_path / "data").iterdir()) == []


def test_save_writes_both_files_and_metadata(store: RecordingStore) -> None:
    rid = save(store, original=b"OggS-original", content_type="audio/ogg", extension="ogg")
    meta = store.get(rid)
    assert meta is not None
    assert (meta.user_id, meta.content_type, meta.size, meta.wav_size) == (
        "alice",
        "audio/ogg",
        13,
        100,
    )
    assert store.path(meta, "original").read_bytes() == b"OggS-original"
    assert store.path(meta, "wav").read_bytes() == b"w" * 100
    folder = store.path(meta).parent
    assert folder.is_relative_to(store.root)
    assert sorted(p.name for p in folder.iterdir()) == ["audio.wav", "meta.json", "original.ogg"]
    assert list((store.root / INCOMING).iterdir()) == []  # staged, then renamed
    # Without an original the WAV is the original.
    plain = store.get(save(store))
    assert plain is not None and store.path(plain, "original") == store.path(plain, "wav")


def test_delete_removes_everything(store: RecordingStore) -> None:
    rid = save(store)
    assert store.delete(rid) is True
    assert store.get(rid) is None
    assert store.delete(rid) is False
    assert [p for p in store.root.rglob("*") if p.is_file()] == []


def test_retention_by_age(store: RecordingStore) -> None:
    old, new = save(store), save(store)
    meta_path = store.path(store.get(old)).parent / "meta.json"  # type: ignore[arg-type]
    meta = store.get(old)
    assert meta is not None
    aged = meta.model_copy(update={"created_at": datetime.now(UTC) - timedelta(days=31)})
    meta_path.write_text(aged.model_dump_json())
    report = store.enforce_retention(max_age_s=30 * 86400, max_bytes=None)
    assert (report.deleted, report.kept) == (1, 1)
    assert store.get(old) is None and store.get(new) is not None


def test_retention_by_size_deletes_oldest_first(store: RecordingStore) -> None:
    ids = []
    for _ in range(5):
        ids.append(save(store, wav=b"x" * 1000))
        time.sleep(0.002)
    report = store.enforce_retention(max_age_s=None, max_bytes=2500)
    assert report.deleted == 3 and report.kept_bytes == 2000
    assert [store.get(rid) is not None for rid in ids] == [False, False, False, True, True]


def test_retention_sweeps_stale_staging_folders(store: RecordingStore) -> None:
    stale = store.root / INCOMING / "crashed-upload"
    stale.mkdir(parents=True)
    (stale / "audio.wav").write_bytes(b"half")
    old = time.time() - 7200
    os.utime(stale, (old, old))
    fresh = store.root / INCOMING / "in-progress"
    fresh.mkdir()
    store.enforce_retention(max_age_s=None, max_bytes=None)
    assert not stale.exists() and fresh.exists()
