"""The worker's tuned store: every tuning key reaches faust's RocksDBOptions."""

from __future__ import annotations

from faust.stores.rocksdb import RocksDBOptions

from state.rocksdb_options import RocksDBTuning
from streams.worker.faust_seam import faust_table_options


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
