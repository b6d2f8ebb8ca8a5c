"""faust's RocksDB store with the full tuning of :mod:`state.rocksdb_options`.

faust-streaming applies only a few option keys from a table's ``options=`` mapping and silently drops the rest,
compression among them. This store builds each partition database's options with
:func:`state.rocksdb_options.rocksdict_options` instead: LZ4 with ZSTD on the last level, 16 KiB blocks, 10-bit
bloom filters, and one block cache shared by all partitions of a worker, so memory is bounded per worker rather
than per partition. The on-disk layout is faust's own, so the offline reader and faust's recovery are unchanged.
"""

from __future__ import annotations

from typing import Any

import faust.stores
import rocksdict
from faust.stores import rocksdb as faust_rocksdb

from state.rocksdb_options import RocksDBTuning, rocksdict_options

STORE_SCHEME = "profilestream-rocksdb"
# Partitions of one worker share this many block-cache budgets of one partition.
SHARED_CACHE_PARTITIONS = 4


class _TunedOptions(faust_rocksdb.RocksDBOptions):
    """faust's options object, answering with the complete tuned rocksdict options."""

    def __init__(self, tuning: RocksDBTuning, cache: rocksdict.Cache) -> None:
        super().__init__(**tuning.faust_table_options(), use_rocksdict=True)
        self._tuning = tuning
        self._cache = cache

    def as_options(self) -> rocksdict.Options:
        return rocksdict_options(self._tuning, self._cache)


class TunedStore(faust_rocksdb.Store):
    """A faust RocksDB store (rocksdict driver) with the project's tuned options."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        tuning = RocksDBTuning()
        cache = rocksdict.Cache(SHARED_CACHE_PARTITIONS * tuning.block_cache_bytes)
        self.rocksdb_options = _TunedOptions(tuning, cache)


def register_store() -> str:
    """Make the tuned store available to faust; returns the store URL to give a table or the app."""
    faust.stores.STORES.aliases[STORE_SCHEME] = f"{__name__}:TunedStore"
    return f"{STORE_SCHEME}://"
