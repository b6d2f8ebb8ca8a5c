"""Taking deleted records out of a RocksDB database's files: what makes a deletion leave the disk.

A delete in RocksDB only writes a tombstone. The old value stays in the write-ahead log until the memtable it
backs is flushed, and in the SST files until a compaction merges the tombstone with it, which on a quiet database
may be never; the MANIFEST names every SST file's first and last key. :func:`purge_deleted` flushes the memtable
(the log that held the value is then obsolete and removed) and compacts the whole key range into the last level,
rewriting the last level too, so tombstones and the values under them are dropped; then it rewrites one small
file, so that the MANIFEST is replaced once more after the files that named deleted keys are gone. With the
tuned options (:class:`state.rocksdb_options.RocksDBTuning`: no log archive, a new MANIFEST at every change) no
file of the database holds a deleted key or value afterwards (``tests/state/test_purge.py``,
``tests/streams/test_state_purge.py``).

Both functions block; run them off the event loop (rocksdict releases the GIL while it compacts).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import rocksdict

_MEMTABLE_DELETES = ("rocksdb.num-deletes-active-mem-table", "rocksdb.num-deletes-imm-mem-tables")


@dataclass(frozen=True, slots=True)
class PurgeResult:
    """What one purge of a database did."""

    deletes: int
    """Tombstones the database held before (memtables and SST files)."""
    bytes_before: int
    """Size of its live SST files before the purge (after the flush)."""
    bytes_after: int
    """Size of its live SST files after the purge."""
    seconds: float
    """Wall time of the flush and the compaction."""


def _sst_bytes(db: Any) -> int:
    return sum(int(f["size"]) for f in db.live_files())


def pending_deletes(db: Any) -> int:
    """Tombstones in ``db`` (a ``rocksdict.Rdict``) that a purge would remove: in its memtables and SST files.

    After a purge this is 0 until the next delete, so it tells whether a database needs one.
    """
    in_memtables = sum(int(db.property_int_value(name) or 0) for name in _MEMTABLE_DELETES)
    return in_memtables + sum(int(f["num_deletions"]) for f in db.live_files())


def purge_deleted(db: Any) -> PurgeResult:
    """Flush ``db`` and compact all of it into the last level, dropping tombstones and the values they delete.

    Writes may go on meanwhile (RocksDB allows it); a delete that arrives during the purge stays for the next.
    """
    start = time.perf_counter()
    deletes = pending_deletes(db)
    db.flush(wait=True)
    before = _sst_bytes(db)
    options = rocksdict.CompactOptions()
    # Leveled compaction leaves the last level alone unless forced; tombstones are dropped only there.
    options.set_bottommost_level_compaction(rocksdict.BottommostLevelCompaction.force())
    db.compact_range(None, None, options)
    # The compaction's new MANIFEST starts with the list of files from before it, which may name a deleted key
    # as a file's first or last; one more change starts another MANIFEST, and RocksDB deletes the old ones once a
    # compaction finishes. That change is a second compaction of the whole range: one keyed by a file's first
    # and last user (cheaper) is written to RocksDB's info LOG with both ids, which then outlive their erasure.
    if db.live_files():
        db.compact_range(None, None, options)
    return PurgeResult(deletes, before, _sst_bytes(db), time.perf_counter() - start)
