"""state.purge on a real RocksDB database with the worker's tuning, uncompressed so its files can be searched:
after a purge no file of the database holds a deleted user's id or value; without one, or with RocksDB's default
MANIFEST size, one does."""

from __future__ import annotations

from pathlib import Path

import rocksdict

from state.purge import pending_deletes, purge_deleted
from state.rocksdb_options import RocksDBTuning, rocksdict_options

USER = b"user-erased-7d41c0"
MARKER = b"marker-value-a93f17e2"
OFFSET = b"__faust\x00offset__"


def _open(path: Path, **tuning: int) -> rocksdict.Rdict:
    options = rocksdict_options(RocksDBTuning(compression="none", bottommost_compression="none", **tuning))
    return rocksdict.Rdict(str(path), options)


def _files_holding(path: Path, *needles: bytes) -> list[str]:
    return sorted(f.name for f in path.iterdir() if f.is_file() and any(n in f.read_bytes() for n in needles))


def _erase_one_user(db: rocksdict.Rdict, flushed: bool) -> None:
    """Other users, then one whose id is the largest key (so it bounds an SST file), then its deletion."""
    for i in range(50):
        db[f"user-{i:03d}".encode()] = b"v" * 200
    db[USER] = b"x" * 100 + MARKER + b"y" * 100
    db[OFFSET] = b"7"
    if flushed:
        db.flush()
    batch = rocksdict.WriteBatch(raw_mode=True)
    batch.delete(USER)
    batch.put(OFFSET, b"8")
    db.write(batch)


def test_a_purge_leaves_no_deleted_key_or_value_in_any_file(tmp_path: Path) -> None:
    for flushed in (False, True):
        path = tmp_path / f"db-{flushed}"
        db = _open(path)
        _erase_one_user(db, flushed)
        # The check can fail: before the purge the deleted value is on disk (log or SST file).
        assert _files_holding(path, MARKER)
        assert pending_deletes(db) == 1
        result = purge_deleted(db)
        assert result.deletes == 1
        assert _files_holding(path, USER, MARKER) == []
        assert pending_deletes(db) == 0
        assert db[b"user-007"] == b"v" * 200  # the others are intact
        db.close()
        assert _files_holding(path, USER, MARKER) == []


def test_without_a_new_manifest_at_each_change_the_deleted_id_stays_in_the_manifest(tmp_path: Path) -> None:
    db = _open(tmp_path, max_manifest_bytes=1 << 30)  # RocksDB's default
    _erase_one_user(db, flushed=True)
    purge_deleted(db)
    assert [name for name in _files_holding(tmp_path, USER) if name.startswith("MANIFEST")]
    assert _files_holding(tmp_path, MARKER) == []
    db.close()


def test_nothing_to_purge_in_a_database_without_deletes(tmp_path: Path) -> None:
    db = _open(tmp_path)
    db[b"user-1"] = b"v"
    assert pending_deletes(db) == 0
    db.flush()
    assert pending_deletes(db) == 0
    del db[b"user-1"]
    assert pending_deletes(db) == 1
    db.close()


def test_an_id_the_purge_compacted_by_is_not_left_in_rocksdbs_info_log(tmp_path: Path) -> None:
    # RocksDB's info LOG names a manual compaction's range: keyed by a file's first and last user, it kept their
    # ids (hex-encoded) after a later purge erased them.
    db = _open(tmp_path)
    for i in range(50):
        db[f"user-{i:03d}".encode()] = b"v" * 200
    db.flush()
    del db[b"user-010"]
    purge_deleted(db)  # the round before: its compactions' ranges are in the LOG by then
    first, last = b"user-000", b"user-049"  # the bounds of every file of this small database
    for user in (first, last):
        del db[user]
    purge_deleted(db)
    db.close()
    needles = [form for user in (first, last) for form in (user, user.hex().upper().encode(), user.hex().encode())]
    assert _files_holding(tmp_path, *needles) == []
