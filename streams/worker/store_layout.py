"""Where faust-streaming keeps the user-state table on disk: the worker's layout facts, in one place.

faust's rocksdb store keeps one RocksDB database per table partition at
``<tabledir>/<table name>-<partition>.db``, where ``tabledir`` defaults to ``<datadir>/v<app version>/tables``,
and records the last changelog offset written to a partition under :data:`OFFSET_KEY` in that database. The
offline reader (:mod:`state.reader`) knows none of this: the CLI and the benchmarks find the stores here and hand
the reader their paths. No faust import, so the CLI's state commands stay light; the canary test
(``tests/streams/worker/test_faust_seam.py``) checks these facts against the installed faust.
"""

from __future__ import annotations

from pathlib import Path

from state.errors import StoreNotFoundError
from streams.contract.topics import STATE_TABLE

TABLE_NAME = STATE_TABLE
"""The worker's state table (its changelog topic is ``<app_id>-user-state-changelog``)."""
OFFSET_KEY = b"__faust\x00offset__"
"""Where faust's rocksdb store records the last changelog offset written to a partition database."""
DEFAULT_APP_VERSION = 1
"""faust's default ``version`` setting, which names the ``v1`` directory under the data directory."""
STORE_SUFFIX = ".db"


def table_dir(datadir: Path, app_version: int = DEFAULT_APP_VERSION) -> Path:
    """faust's default ``tabledir`` for a worker started with ``datadir``: ``<datadir>/v<version>/tables``."""
    return Path(datadir) / f"v{app_version}" / "tables"


def split_store_name(name: str) -> tuple[str, int] | None:
    """``(table name, partition)`` of a store directory name ``<table name>-<partition>.db``, else None."""
    if not name.endswith(STORE_SUFFIX):
        return None
    table, sep, number = name[: -len(STORE_SUFFIX)].rpartition("-")
    if not (sep and table and number.isascii() and number.isdigit()):
        return None
    return table, int(number)


def partition_of(store: Path) -> int | None:
    """The partition number of a store directory, or None if its name is not ``<table>-<n>.db``."""
    split = split_store_name(store.name)
    return None if split is None else split[1]


def find_partition_stores(tables: Path, table_name: str = TABLE_NAME) -> list[Path]:
    """The table's partition databases under ``tables``, ordered by partition number.

    Raises ``StoreNotFoundError`` if ``tables`` is not a directory. The list may include partitions this worker
    only holds as a standby or held before a rebalance: faust leaves their databases on disk.
    """
    if not tables.is_dir():
        raise StoreNotFoundError(f"no table directory at {tables}")
    found: list[tuple[int, Path]] = []
    for child in tables.iterdir():
        split = split_store_name(child.name)
        if split is not None and split[0] == table_name and child.is_dir():
            found.append((split[1], child))
    return [path for _, path in sorted(found)]


def worker_stores(datadir: Path) -> list[Path]:
    """The user-state partition databases of a worker started with ``datadir``."""
    return find_partition_stores(table_dir(datadir), TABLE_NAME)


def worker_stores_on_disk(datadir: Path) -> list[Path]:
    """Like :func:`worker_stores`, but empty where the worker has not made its table directory yet."""
    if not table_dir(datadir).is_dir():
        return []
    return worker_stores(datadir)
