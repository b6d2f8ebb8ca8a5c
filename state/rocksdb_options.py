"""Tuned RocksDB options for the user-state table, as plain data and as a full rocksdict `Options`.

The workload: point reads and overwrites of 1-2 KiB values keyed by user id, every user touched in a batch is
rewritten, new users miss, and faust probes every partition database for a key it has not indexed yet. So:
good bloom filters, blocks big enough to compress several values, bounded memory per partition, cheap
compression on the hot levels and a stronger one where most data lives. Why each value: docs/state.md.

`rocksdict_options` builds the complete options; the worker hands them to its framework's store
(``streams/worker/faust_seam.py``, see docs/state.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import rocksdict

from state.errors import StateSpecError

KIB = 1024
MIB = 1024 * KIB

Compression = Literal["none", "snappy", "lz4", "zstd"]

_COMPRESSION = {
    "none": rocksdict.DBCompressionType.none,
    "snappy": rocksdict.DBCompressionType.snappy,
    "lz4": rocksdict.DBCompressionType.lz4,
    "zstd": rocksdict.DBCompressionType.zstd,
}


@dataclass(frozen=True)
class RocksDBTuning:
    """RocksDB settings of the user-state table. Sizes are per partition database unless noted."""

    block_cache_bytes: int = 64 * MIB
    """LRU cache of uncompressed blocks. faust's stock store makes one cache per partition database (its
    default is 2 GiB each); `rocksdict_options` can share one cache across partitions instead."""
    write_buffer_bytes: int = 16 * MIB
    """Size of one memtable (faust's default: 64 MiB)."""
    max_write_buffers: int = 3
    """Memtables per database, so memtable memory is at most write_buffer_bytes * max_write_buffers."""
    target_file_bytes: int = 32 * MIB
    """Target size of an SST file on level 1."""
    bloom_bits_per_key: int = 10
    """Bloom filter bits per key: about 1 % false positives (faust's default of 3 gives about 15 %)."""
    block_bytes: int = 16 * KIB
    """Data block size: about ten records per block, so compression sees more than one value."""
    compression: Compression = "lz4"
    """Compression of every level but the last: fast enough for the write and compaction path."""
    bottommost_compression: Compression = "zstd"
    """Compression of the last level, which holds most of the data."""
    background_jobs: int = 2
    """Concurrent flushes and compactions per database."""
    max_open_files: int | None = None
    """Open file limit per database; None keeps faust's default (90 % of the process limit)."""
    max_manifest_bytes: int = 1
    """A MANIFEST larger than this is replaced, at the next flush or compaction, by a new one listing only the
    live files. The MANIFEST records every SST file's first and last key, which are user ids, and is otherwise
    only replaced once it reaches 1 GiB: at 1 byte every change starts a new one, so a purge (`state.purge`)
    leaves no erased user's id there either. The cost is a MANIFEST of a few KiB written per flush or
    compaction."""

    def __post_init__(self) -> None:
        sizes = {
            "block_cache_bytes": self.block_cache_bytes,
            "write_buffer_bytes": self.write_buffer_bytes,
            "max_write_buffers": self.max_write_buffers,
            "target_file_bytes": self.target_file_bytes,
            "bloom_bits_per_key": self.bloom_bits_per_key,
            "block_bytes": self.block_bytes,
            "background_jobs": self.background_jobs,
            "max_manifest_bytes": self.max_manifest_bytes,
        }
        for name, value in sizes.items():
            if value <= 0:
                raise StateSpecError(f"RocksDB tuning {name} must be positive, got {value}")
        for name in ("compression", "bottommost_compression"):
            if getattr(self, name) not in _COMPRESSION:
                raise StateSpecError(f"RocksDB tuning {name} must be one of {sorted(_COMPRESSION)}")


def rocksdict_options(
    tuning: RocksDBTuning,
    cache: rocksdict.Cache | None = None,
    write_buffers: rocksdict.WriteBufferManager | None = None,
) -> rocksdict.Options:
    """Complete options for one partition database, in raw mode like faust's store.

    Pass the same `cache` for every partition to bound the block cache per worker rather than per partition, and
    the same `write_buffers` to bound the memtables of all partitions together: a worker owning many partitions
    then flushes earlier instead of holding a full set of memtables for each.
    """
    options = rocksdict.Options(raw_mode=True)
    options.create_if_missing(True)
    options.set_write_buffer_size(tuning.write_buffer_bytes)
    if write_buffers is not None:
        options.set_write_buffer_manager(write_buffers)
    options.set_max_write_buffer_number(tuning.max_write_buffers)
    options.set_target_file_size_base(tuning.target_file_bytes)
    options.set_max_background_jobs(tuning.background_jobs)
    # Sizes each level from the last one up: space amplification stays near 1.1 for an overwrite workload.
    options.set_level_compaction_dynamic_level_bytes(True)
    options.set_compression_type(_COMPRESSION[tuning.compression]())
    options.set_bottommost_compression_type(_COMPRESSION[tuning.bottommost_compression]())
    if tuning.max_open_files is not None:
        options.set_max_open_files(tuning.max_open_files)
    options.set_max_manifest_file_size(tuning.max_manifest_bytes)
    # No archive of write-ahead logs (RocksDB's defaults, pinned): a log is deleted once the memtable it backs
    # is flushed, which is what lets a purge take a deleted value out of the logs too.
    options.set_wal_ttl_seconds(0)
    options.set_wal_size_limit_mb(0)
    table = rocksdict.BlockBasedOptions()
    table.set_block_size(tuning.block_bytes)
    table.set_bloom_filter(tuning.bloom_bits_per_key, False)
    table.set_block_cache(cache if cache is not None else rocksdict.Cache(tuning.block_cache_bytes))
    # Index and filter blocks live in the block cache, so the cache size bounds read memory; level-0 ones are
    # pinned because every read consults them.
    table.set_cache_index_and_filter_blocks(True)
    table.set_pin_l0_filter_and_index_blocks_in_cache(True)
    options.set_block_based_table_factory(table)
    return options


def reader_options() -> rocksdict.Options:
    """Options for opening a partition database read-only as a secondary instance (see `state.reader`).

    Raw mode as faust writes it; every file is opened up front, as a secondary instance requires.
    """
    options = rocksdict.Options(raw_mode=True)
    options.set_max_open_files(-1)
    return options
