"""The user-state Faust table as the worker uses it: changelog first, local store after, each user in its own
partition.

faust-streaming takes a table operation's RocksDB partition and changelog partition from the *current event*.
Inside a ``take_events()`` batch, and in a timer, there is none (faust-streaming issue #497). Reads, writes and
deletes here therefore name the partition themselves: the partition of one of the user's messages, or, for the
expiry scan, the partition being scanned. A user's record always lands in the partition that owns the user, in
the store and in the changelog alike.

Writes follow quix-streams' order: a unit of work's changes are staged as changelog records; only once the
broker has acknowledged them (:meth:`streams.worker.bulk_producer.BulkProducer.publish`) does :meth:`apply` write
them to RocksDB, in one write batch per partition together with the changelog offset they reached. A crash
before the acknowledgement leaves store and changelog both without the change (and the input offsets
uncommitted, so Kafka redelivers); a crash after it leaves the change in the changelog, which faust's recovery
replays into the store from the persisted offset on. Either way a restore from the changelog equals the store
for every event whose input offset was committed.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import rocksdict

from streams.worker.bulk_producer import BulkProducer
from streams.worker.faust_seam import open_partition_dbs, partition_db
from streams.worker.processor import InboundMessage
from streams.worker.store_layout import OFFSET_KEY

log = logging.getLogger(__name__)


class FaustStateAccess:
    """:class:`streams.worker.processor.StateAccess` on a Faust table, pinned to each user's own partition.

    :meth:`store` and :meth:`delete` change nothing on disk: they remember the change; :meth:`stage_changelog`
    hands its changelog records to the bulk producer, and :meth:`apply` writes the changes once those records were
    acknowledged.
    """

    def __init__(self, table: Any, bulk: BulkProducer) -> None:
        self.table = table
        self.bulk = bulk
        self._pending: dict[int, dict[bytes, bytes | None]] = {}

    @functools.cached_property
    def changelog_topic(self) -> str:
        """The table's changelog topic (looked up once: every store and delete stages a record for it)."""
        return str(self.table.changelog_topic.get_topic_name())

    @property
    def pending(self) -> int:
        """Changes staged and not yet written to the local store."""
        return sum(len(p) for p in self._pending.values())

    def load(self, user_id: str, message: InboundMessage) -> bytes | None:
        """The user's stored record, read from the partition of ``message``."""
        return self.read(user_id.encode(), message.partition)

    def read(self, key: bytes, partition: int) -> bytes | None:
        """The record stored under ``key`` in ``partition`` (a change not yet applied wins)."""
        pending = self._pending.get(partition)
        if pending is not None and key in pending:
            return pending[key]
        value = self._partition_db(partition).get(key)
        return value if value is None else bytes(value)

    def store(self, user_id: str, message: InboundMessage, value: bytes) -> None:
        """Stage the user's new record for the partition of ``message``: changelog record now, store at apply."""
        self._change(user_id.encode(), message.partition, value)

    def put(self, key: bytes, partition: int, value: bytes) -> None:
        """Stage a new record for ``key`` in ``partition`` (a background rebuild, outside any message)."""
        self._change(key, partition, value)

    def delete(self, key: bytes, partition: int) -> None:
        """Stage the deletion of a user's record in ``partition`` (a changelog tombstone; store at apply)."""
        self._change(key, partition, None)

    def _change(self, key: bytes, partition: int, value: bytes | None) -> None:
        self._pending.setdefault(partition, {})[key] = value

    def stage_changelog(self) -> None:
        """Hand the changelog records of every pending change to the bulk producer (once per unit of work)."""
        topic = self.changelog_topic
        for partition, changes in self._pending.items():
            for key, value in changes.items():
                self.bulk.stage(topic, partition, key, value)

    def apply(self, delivered: Mapping[tuple[str, int], int], owned: Callable[[int], bool]) -> int:
        """Write the staged changes whose changelog records were acknowledged; returns how many were written.

        ``delivered`` maps (changelog topic, partition) to the offset its last acknowledged record got, which is
        written with the changes in one RocksDB write batch (faust's recovery starts after it). Changes of a
        partition this worker no longer owns are dropped: the new owner restores them from the changelog. A
        failed write (a full disk) raises and keeps the changes staged, so calling again retries it.
        """
        written = 0
        topic = self.changelog_topic
        for partition in sorted(self._pending):
            changes = self._pending[partition]
            if not owned(partition) or partition not in self.local_partitions():
                log.info("changes of revoked partition %d left to the changelog", partition)
                del self._pending[partition]
                continue
            batch = rocksdict.WriteBatch(raw_mode=True)
            for key, value in changes.items():
                if value is None:
                    batch.delete(key)
                else:
                    batch.put(key, value)
            offset = delivered.get((topic, partition))
            if offset is not None:
                batch.put(OFFSET_KEY, str(offset).encode())
            self._partition_db(partition).write(batch)
            written += len(changes)
            del self._pending[partition]
        return written

    def discard_pending(self) -> None:
        """Forget staged changes (their changelog records were never acknowledged)."""
        self._pending.clear()

    def _partition_db(self, partition: int) -> Any:
        return partition_db(self.table, partition)

    def local_partitions(self) -> dict[int, Any]:
        """The RocksDB databases this worker holds, by partition (assigned ones, and standbys)."""
        return open_partition_dbs(self.table)

    def records(self, partition: int) -> Iterator[tuple[bytes, bytes]]:
        """Every (key, record) stored in one local partition."""
        db = self.local_partitions().get(partition)
        if db is None:
            return
        for key, value in db.items():
            if key != OFFSET_KEY and value is not None:
                yield bytes(key), bytes(value)
