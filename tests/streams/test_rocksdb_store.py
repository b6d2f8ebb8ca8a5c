"""The worker's tuned store: every tuning key reaches faust's RocksDBOptions, and partitions share one budget."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import faust
from faust.stores.rocksdb import RocksDBOptions

from state.rocksdb_options import RocksDBTuning
from streams.worker.faust_seam import (
    SHARED_CACHE_PARTITIONS,
    TunedStore,
    faust_table_options,
    open_partition_dbs,
    partition_db,
    register_store,
)
from streams.worker.store_layout import TABLE_NAME


def test_faust_applies_every_table_option() -> None:
    tuning = RocksDBTuning(max_open_files=256)
    options = RocksDBOptions(**faust_table_options(tuning), use_rocksdict=True)
    # faust keeps unknown keys in `extra_options` and ignores them with rocksdict: there must be none.
    assert options.extra_options == {}
    assert options.block_cache_size == tuning.block_cache_bytes
    assert options.write_buffer_size == tuning.write_buffer_bytes
    assert options.max_write_buffer_number == tuning.max_write_buffers
    assert options.target_file_size_base == tuning.target_file_bytes
    assert options.bloom_filter_size == tuning.bloom_bits_per_key
    assert options.max_open_files == 256


def test_faust_table_options_are_a_fresh_dict_each_time() -> None:
    tuning = RocksDBTuning()
    first = faust_table_options(tuning)
    first.pop("block_cache_size")
    assert "block_cache_size" in faust_table_options(tuning)
    assert "max_open_files" not in first  # None keeps faust's own default


def test_the_partitions_of_a_worker_share_one_memtable_budget(tmp_path: Path) -> None:
    app = faust.App("store-budget", broker="kafka://localhost:1", store=register_store(), datadir=str(tmp_path))
    table = app.Table(TABLE_NAME, partitions=24, key_type=bytes, value_type=bytes)
    store: Any = table.data
    assert isinstance(store, TunedStore)
    tuning = RocksDBTuning()
    options: Any = store.rocksdb_options
    budget = options._write_buffers
    # However many partitions the worker owns: SHARED_CACHE_PARTITIONS partitions' worth of memtables.
    assert budget.get_buffer_size() == SHARED_CACHE_PARTITIONS * tuning.write_buffer_bytes * tuning.max_write_buffers
    for partition in (0, 23):
        partition_db(table, partition)[b"k"] = b"v"
    assert budget.get_usage() > 0  # both databases' memtables are counted against it
    for db in open_partition_dbs(table).values():
        db.close()
