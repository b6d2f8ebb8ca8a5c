"""The worker's store layout and the offline reader against RocksDB databases laid out and written the way
faust's rocksdb store does."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import faust
import pytest
import rocksdict
from faust.stores.rocksdb import RocksDBOptions

from state.codec import encode_state
from state.errors import StateDecodeError, StoreNotFoundError
from state.reader import read_user, read_user_copies, store_stats
from state.rocksdb_options import RocksDBTuning
from streams.worker.faust_seam import faust_table_options
from streams.worker.store_layout import OFFSET_KEY, find_partition_stores, partition_of, table_dir
from tests.state.strategies import realistic_user

TABLE = "user-state"


def _faust_db(path: Path) -> rocksdict.Rdict:
    """A partition database opened exactly as faust's store opens it, with our tuned table options."""
    db: rocksdict.Rdict = RocksDBOptions(**faust_table_options(RocksDBTuning()), use_rocksdict=True).open(path)
    return db


@pytest.fixture
def tables(tmp_path: Path) -> Iterator[Path]:
    """A worker's table directory with partitions 0, 1 and 10 of the user-state table and some neighbours."""
    tables = table_dir(tmp_path / "worker-data")
    tables.mkdir(parents=True)
    (tables / f"{TABLE}-backups").mkdir()  # faust makes this next to the partitions
    (tables / "other-table-0.db").mkdir()
    (tables / f"{TABLE}-extra-3.db").mkdir()  # another table whose name starts like ours
    yield tables


def test_table_dir_matches_faust(tmp_path: Path) -> None:
    app = faust.App("reader-layout", broker="kafka://localhost:1", store="rocksdb://", datadir=str(tmp_path))
    table = app.Table(TABLE, partitions=12, key_type=bytes, value_type=bytes)
    store: Any = table.data  # faust types it as a plain mapping; it is faust.stores.rocksdb.Store
    assert table_dir(tmp_path) == Path(app.conf.tabledir)
    for partition in (0, 3, 11):
        path = Path(store.partition_path(partition))
        path.mkdir(parents=True)
        assert path in find_partition_stores(table_dir(tmp_path), TABLE)


def test_find_partition_stores_orders_by_partition(tables: Path) -> None:
    for partition in (10, 0, 1):
        (tables / f"{TABLE}-{partition}.db").mkdir()
    assert [p.name for p in find_partition_stores(tables, TABLE)] == [f"{TABLE}-{n}.db" for n in (0, 1, 10)]
    assert [p.name for p in find_partition_stores(tables, f"{TABLE}-extra")] == [f"{TABLE}-extra-3.db"]


def test_missing_table_dir_is_a_typed_error(tmp_path: Path) -> None:
    with pytest.raises(StoreNotFoundError):
        find_partition_stores(tmp_path / "nope", TABLE)


def test_reads_users_while_the_worker_holds_the_database_open(tables: Path) -> None:
    rng = random.Random(3)
    users = {f"user-{i}": realistic_user(rng) for i in range(40)}
    stores = [tables / f"{TABLE}-{p}.db" for p in range(2)]
    writers = [_faust_db(path) for path in stores]
    try:
        for i, (user_id, record) in enumerate(users.items()):
            writers[i % 2].put(user_id.encode(), encode_state(record))
        for writer in writers:
            writer.put(OFFSET_KEY, b"41")
        # Nothing is flushed: the reader must replay the write-ahead log of a database that is open for writing.
        found = find_partition_stores(tables, TABLE)
        assert found == stores
        assert read_user(found, "user-7") == users["user-7"]
        assert read_user(found, "nobody") is None
        writers[1].put(b"user-late", encode_state(users["user-0"]))
        writers[1].flush()
        assert read_user(found, "user-late") == users["user-0"]
        stats = store_stats(found, skip_keys=frozenset({OFFSET_KEY}), partition_of=partition_of)
    finally:
        for writer in writers:
            writer.close()
    assert stats.users == 41
    assert [p.users for p in stats.partitions] == [20, 21]
    assert [p.partition for p in stats.partitions] == [0, 1]
    assert stats.value_bytes == sum(len(encode_state(r)) for r in users.values()) + len(encode_state(users["user-0"]))
    assert stats.disk_bytes >= stats.sst_bytes > 0
    assert stats.bytes_per_user == stats.disk_bytes / 41
    assert 0 < stats.value_bytes_per_user <= 2048


def test_newest_copy_wins_and_bad_values_are_reported(tables: Path) -> None:
    rng = random.Random(4)
    old, new = realistic_user(rng), realistic_user(rng)
    old.version, new.version = 3, 9
    stores = [tables / f"{TABLE}-{p}.db" for p in range(3)]
    for path, value in zip(stores, (encode_state(old), encode_state(new), b"\x02garbage"), strict=True):
        db = _faust_db(path)
        db.put(b"u", value)
        db.close()
    copies = read_user_copies(stores, "u")
    assert [c.store for c in copies] == stores
    assert isinstance(copies[2].error, StateDecodeError)
    assert read_user(stores, "u") == new
    with pytest.raises(StateDecodeError):
        read_user(stores[2:], "u")
    assert store_stats(stores, check_values=True).partitions[2].undecodable == 1


def test_reader_leaves_a_missing_database_alone(tables: Path) -> None:
    missing = tables / f"{TABLE}-5.db"
    with pytest.raises(StoreNotFoundError):
        read_user([missing], "u")
    assert not missing.exists()


def test_reader_writes_nothing_into_the_database(tables: Path) -> None:
    store = tables / f"{TABLE}-0.db"
    db = _faust_db(store)
    db.put(b"u", encode_state(realistic_user(random.Random(6))))
    db.close()

    def snapshot() -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in store.iterdir() if p.is_file()}

    before = snapshot()
    assert read_user([store], "u") is not None
    store_stats([store])
    assert snapshot() == before
