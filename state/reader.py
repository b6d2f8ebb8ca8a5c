"""Offline, read-only access to a worker's state table on disk, safe while the worker runs.

The caller names the partition databases (where the worker's framework keeps them is the worker's business,
see ``streams.worker.store_layout``). Each database is opened in raw mode: a key is the user id's UTF-8 bytes and
a value is the bytes `state.codec.encode_state` made; keys the caller names in ``skip_keys`` (the framework's
own bookkeeping) are not users.

Databases are opened as RocksDB *secondary instances* (their own info log goes to a temporary directory): unlike
a plain read-only open, a secondary instance tolerates the primary deleting files during compaction, so the
reader works while the worker writes. It sees the data as of the moment it opened, memtable included (it
replays the write-ahead log). It never writes to the database; rocksdict does rewrite its own small
``rocksdict-config.json`` with the same content when it opens one.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import rocksdict

from state.codec import decode_state
from state.errors import StateDecodeError, StoreNotFoundError, StoreOpenError
from state.record import UserState
from state.rocksdb_options import reader_options
from state.spec import StateSpec

OPEN_ATTEMPTS = 3
OPEN_RETRY_DELAY_S = 0.2


@contextmanager
def open_store(store: Path) -> Iterator[rocksdict.Rdict]:
    """Open one partition database as a read-only secondary instance for the duration of the block."""
    if not (store / "CURRENT").is_file():
        # Checked first: rocksdict would create the directory of a database that does not exist.
        raise StoreNotFoundError(f"no RocksDB database at {store}")
    with tempfile.TemporaryDirectory(prefix="profilestream-reader-") as secondary_dir:
        db = _open_secondary(store, secondary_dir)
        try:
            yield db
        finally:
            db.close()


def _open_secondary(store: Path, secondary_dir: str) -> rocksdict.Rdict:
    last_error: Exception | None = None
    for attempt in range(OPEN_ATTEMPTS):
        try:
            return rocksdict.Rdict(
                str(store), options=reader_options(), access_type=rocksdict.AccessType.secondary(secondary_dir)
            )
        except Exception as exc:  # rocksdict raises plain Exception; a compaction race is worth a retry
            last_error = exc
            if attempt + 1 < OPEN_ATTEMPTS:
                time.sleep(OPEN_RETRY_DELAY_S)
    raise StoreOpenError(f"cannot open {store}: {last_error}") from last_error


@dataclass(frozen=True)
class StoredRecord:
    """One copy of a user's record: where it is, how big it is, and the record (or why it did not decode)."""

    store: Path
    value_bytes: int
    record: UserState | None
    error: StateDecodeError | None = None


def read_user_copies(stores: Sequence[Path], user_id: str, spec: StateSpec | None = None) -> list[StoredRecord]:
    """Every copy of `user_id`'s record across `stores` (normally one; stale partitions can hold more)."""
    key = user_id.encode("utf-8")
    copies: list[StoredRecord] = []
    for store in stores:
        with open_store(store) as db:
            value = db.get(key)
        if value is None:
            continue
        data = bytes(value)
        try:
            copies.append(StoredRecord(store, len(data), decode_state(data, spec)))
        except StateDecodeError as exc:
            copies.append(StoredRecord(store, len(data), None, exc))
    return copies


def read_user(stores: Sequence[Path], user_id: str, spec: StateSpec | None = None) -> UserState | None:
    """The user's record, or None if no store holds it.

    If several partitions hold a copy (a stale partition left by a rebalance), the one with the highest profile
    version wins. Raises the `StateDecodeError` of the first copy if no copy decodes.
    """
    copies = read_user_copies(stores, user_id, spec)
    records = [c.record for c in copies if c.record is not None]
    if records:
        return max(records, key=lambda r: (r.version, r.last_event_ms))
    for copy in copies:
        if copy.error is not None:
            raise copy.error
    return None


@dataclass(frozen=True)
class PartitionStats:
    """Size of one partition database."""

    partition: int | None
    store: Path
    users: int
    key_bytes: int
    value_bytes: int
    sst_bytes: int
    """Live data on disk: the SST files (compressed)."""
    wal_bytes: int
    """Write-ahead log not yet flushed into SST files (uncompressed)."""
    disk_bytes: int
    """Every file in the database directory (SST, WAL, manifest, options, info logs)."""
    undecodable: int | None
    """Values that failed to decode, if values were checked."""


@dataclass(frozen=True)
class StoreStats:
    """Size of a table across its partition databases."""

    partitions: tuple[PartitionStats, ...]

    @property
    def users(self) -> int:
        """Records across all partitions (a user held by a stale partition too is counted twice)."""
        return sum(p.users for p in self.partitions)

    @property
    def value_bytes(self) -> int:
        """Encoded record bytes, before RocksDB's compression and overhead."""
        return sum(p.value_bytes for p in self.partitions)

    @property
    def sst_bytes(self) -> int:
        """SST bytes across partitions."""
        return sum(p.sst_bytes for p in self.partitions)

    @property
    def disk_bytes(self) -> int:
        """Bytes on disk across partitions."""
        return sum(p.disk_bytes for p in self.partitions)

    @property
    def bytes_per_user(self) -> float:
        """Bytes on disk per user (0.0 for an empty table)."""
        return self.disk_bytes / self.users if self.users else 0.0

    @property
    def sst_bytes_per_user(self) -> float:
        """SST bytes per user: the steady-state cost once the write-ahead log is flushed."""
        return self.sst_bytes / self.users if self.users else 0.0

    @property
    def value_bytes_per_user(self) -> float:
        """Mean encoded record size."""
        return self.value_bytes / self.users if self.users else 0.0


def store_stats(
    stores: Sequence[Path],
    *,
    check_values: bool = False,
    skip_keys: frozenset[bytes] = frozenset(),
    partition_of: Callable[[Path], int | None] = lambda _store: None,
) -> StoreStats:
    """Count users and bytes in each partition database; with `check_values`, decode every value too.

    Keys in `skip_keys` are not users; `partition_of` names the partition of a store path."""
    partitions = []
    for store in stores:
        users = key_bytes = value_bytes = bad = 0
        with open_store(store) as db:
            for key, value in db.items():
                if key in skip_keys or not isinstance(key, bytes):
                    continue
                users += 1
                key_bytes += len(key)
                value_bytes += len(value)
                if check_values:
                    try:
                        decode_state(bytes(value))
                    except StateDecodeError:
                        bad += 1
        sst, wal, total = _disk_usage(store)
        partitions.append(
            PartitionStats(
                partition=partition_of(store),
                store=store,
                users=users,
                key_bytes=key_bytes,
                value_bytes=value_bytes,
                sst_bytes=sst,
                wal_bytes=wal,
                disk_bytes=total,
                undecodable=bad if check_values else None,
            )
        )
    return StoreStats(tuple(partitions))


def _disk_usage(store: Path) -> tuple[int, int, int]:
    """(SST bytes, write-ahead-log bytes, all bytes) of the files in a database directory."""
    sst = wal = total = 0
    for child in store.iterdir():
        try:
            size = child.stat().st_size
        except FileNotFoundError:  # deleted by a compaction since we listed the directory
            continue
        if not child.is_file():
            continue
        total += size
        if child.suffix == ".sst":
            sst += size
        elif child.suffix == ".log":
            wal += size
    return sst, wal, total
