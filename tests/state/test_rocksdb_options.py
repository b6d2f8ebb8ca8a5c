"""RocksDB tuning: the full options open a working database."""

from __future__ import annotations

from pathlib import Path

import pytest
import rocksdict

from state.errors import StateSpecError
from state.rocksdb_options import MIB, RocksDBTuning, reader_options, rocksdict_options


def _options_file(db_path: Path) -> str:
    return max(db_path.glob("OPTIONS-*")).read_text()


def test_full_options_write_compressed_tables_and_read_back(tmp_path: Path) -> None:
    tuning = RocksDBTuning(write_buffer_bytes=MIB, compression="lz4", bottommost_compression="zstd")
    cache = rocksdict.Cache(8 * MIB)
    path = tmp_path / "user-state-0.db"
    db = rocksdict.Rdict(str(path), options=rocksdict_options(tuning, cache))
    for i in range(2000):
        db.put(f"user-{i}".encode(), bytes([i % 7]) * 1500)
    db.flush()
    db.close()
    written = _options_file(path)
    assert "compression=kLZ4Compression" in written
    assert "bottommost_compression=kZSTD" in written
    assert "block_size=16384" in written
    reader = rocksdict.Rdict(str(path), options=reader_options(), access_type=rocksdict.AccessType.read_only())
    try:
        assert reader.get(b"user-1999") == bytes([1999 % 7]) * 1500
    finally:
        reader.close()
    # Compressible values shrink well below their 3 MB raw size.
    assert sum(p.stat().st_size for p in path.glob("*.sst")) < 1_000_000


@pytest.mark.parametrize(
    "bad",
    [{"block_cache_bytes": 0}, {"bloom_bits_per_key": -1}, {"compression": "brotli"}],
)
def test_invalid_tuning_is_rejected(bad: dict[str, object]) -> None:
    with pytest.raises(StateSpecError):
        RocksDBTuning(**bad)  # type: ignore[arg-type]
