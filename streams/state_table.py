"""The user-state Faust table as the worker uses it: every read, write and delete in the user's own partition.

faust-streaming takes a table operation's RocksDB partition and changelog partition from the *current event*.
Inside a ``take_events()`` batch, and in a timer, there is none (faust-streaming issue #497). Reads, writes and
deletes here therefore name the partition themselves: the partition of one of the user's messages, or, for the
expiry scan, the partition being scanned. A user's record always lands in the partition that owns the user, in
the store and in the changelog alike."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

from faust.types import TP

from state.reader import FAUST_OFFSET_KEY
from streams.bulk_producer import BulkProducer
from streams.processor import InboundMessage


class FaustStateAccess:
    """:class:`streams.processor.StateAccess` on a Faust table, pinned to each user's own partition.

    Writes and deletes go to the table's store at once, as faust's own ``table[key] = value`` does, but their
    changelog records are staged on a :class:`streams.bulk_producer.BulkProducer` and leave in record batches
    at the next flush; once a batch is written, the partition's persisted changelog offset is recorded in its
    store, which is what faust's recovery starts from. Every change of the table goes through here, so the
    changelog keeps the order of the store.
    """

    def __init__(self, table: Any, bulk: BulkProducer) -> None:
        self.table = table
        self.bulk = bulk

    @functools.cached_property
    def changelog_topic(self) -> str:
        """The table's changelog topic (looked up once: every store and delete stages a record for it)."""
        return str(self.table.changelog_topic.get_topic_name())

    def load(self, user_id: str, message: InboundMessage) -> bytes | None:
        """The user's stored record, read from the partition of ``message``."""
        value = self._partition_db(message.partition).get(user_id.encode())
        return value if value is None else bytes(value)

    def store(self, user_id: str, message: InboundMessage, value: bytes) -> None:
        """Store the user's record in the partition of ``message``; its changelog record is staged."""
        key = user_id.encode()
        self._partition_db(message.partition).put(key, value)
        self.bulk.stage(self.changelog_topic, message.partition, key, value, on_delivered=self._persisted)

    def _partition_db(self, partition: int) -> Any:
        # The partition's RocksDB database, as faust's store itself reaches it for a key of that partition (keys
        # and values are raw bytes); going straight there skips faust's current-event lookup on the hot path.
        return self.table.data._db_for_partition(partition)

    def delete(self, key: bytes, partition: int) -> None:
        """Delete a user's record in ``partition`` (store at once, changelog tombstone staged)."""
        self._partition_db(partition).delete(key)
        self.bulk.stage(self.changelog_topic, partition, key, None, on_delivered=self._persisted)

    def _persisted(self, topic: str, partition: int, offset: int) -> None:
        self.table.data.set_persisted_offset(TP(topic, partition), offset)

    def local_partitions(self) -> dict[int, Any]:
        """The RocksDB databases this worker holds, by partition (assigned ones, and standbys)."""
        return dict(self.table.data._dbs)

    def records(self, partition: int) -> Iterator[tuple[bytes, bytes]]:
        """Every (key, record) stored in one local partition."""
        db = self.local_partitions().get(partition)
        if db is None:
            return
        for key, value in db.items():
            if key != FAUST_OFFSET_KEY and value is not None:
                yield bytes(key), bytes(value)
