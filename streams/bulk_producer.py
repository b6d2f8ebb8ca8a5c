"""Bulk publishing on the worker's own Kafka producer: whole record batches per partition instead of one send each.

faust's ``Topic.send`` costs about as much per record as folding the event that caused it (a future, a pending
message, a buffer hop and callbacks each), and a micro-batch makes one state write and one profile per user.
:class:`BulkProducer` stages records synchronously and :meth:`BulkProducer.flush` hands them to aiokafka as
record batches (``create_batch``/``send_batch``) on the producer faust already runs, so faust's commit, which
flushes that producer before it commits input offsets, still covers them: at least once, as before.

Order is kept per partition: records leave in the order they were staged, one flush at a time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka.partitioner import DefaultPartitioner

log = logging.getLogger(__name__)

Headers = Sequence[tuple[str, bytes]]
Delivered = Callable[[str, int, int], None]
"""Called with (topic, partition, offset of the batch's last record) once a batch is written."""
Failed = Callable[[str, int, int], None]
"""Called with (topic, partition, number of records) when a batch could not be written."""


class DeliveryError(RuntimeError):
    """A staged batch could not be written to Kafka; the worker must not go on as if it had been."""


@dataclass(slots=True)
class _Staged:
    key: bytes | None
    value: bytes | None
    headers: Headers


@dataclass(slots=True)
class _PartitionQueue:
    records: list[_Staged] = field(default_factory=list)
    on_delivered: Delivered | None = None


class BulkProducer:
    """Stages records per (topic, partition) and submits them as record batches.

    ``producer`` is the running ``aiokafka.AIOKafkaProducer`` (faust's); it is looked up on each flush, since
    faust creates it when the app starts.
    """

    def __init__(self, producer: Callable[[], Any], on_failed: Failed | None = None) -> None:
        self._producer = producer
        self._on_failed = on_failed
        self._queues: dict[tuple[str, int], _PartitionQueue] = {}
        self._partitions: dict[str, list[int]] = {}
        self._partitioner = DefaultPartitioner()
        self._lock = asyncio.Lock()
        self._failure: BaseException | None = None
        self.batches_sent = 0

    def stage(
        self,
        topic: str,
        partition: int,
        key: bytes | None,
        value: bytes | None,
        *,
        headers: Headers = (),
        on_delivered: Delivered | None = None,
    ) -> None:
        """Queue one record for ``topic``/``partition``; ``on_delivered`` replaces the partition's callback."""
        queue = self._queues.setdefault((topic, partition), _PartitionQueue())
        queue.records.append(_Staged(key, value, headers))
        if on_delivered is not None:
            queue.on_delivered = on_delivered

    async def learn_partitions(self, topic: str) -> None:
        """Fetch the partitions of ``topic`` once, for :meth:`partition_of`."""
        if topic not in self._partitions:
            found = await self._producer().partitions_for(topic)
            self._partitions[topic] = sorted(found)

    def partition_of(self, topic: str, key: bytes) -> int:
        """The partition Kafka's default partitioner (murmur2 of the key) gives ``key``, as faust's sends do;
        :meth:`learn_partitions` must have run for ``topic``."""
        partitions = self._partitions[topic]
        return int(self._partitioner(key, partitions, partitions))

    async def flush(self) -> int:
        """Submit everything staged so far; returns the number of records submitted.

        Returns once the batches are queued in the producer, not when they are written: faust's commit waits for
        that. Raises :class:`DeliveryError` when an earlier batch failed to be written.
        """
        if self._failure is not None:
            raise DeliveryError("a batch of records could not be written to Kafka") from self._failure
        if not self._queues:
            return 0
        queues, self._queues = self._queues, {}
        submitted = 0
        # One flush at a time, so two flushes cannot interleave the batches of one partition.
        async with self._lock:
            producer = self._producer()
            for (topic, partition), queue in queues.items():
                records = queue.records
                start = 0
                while start < len(records):
                    batch = producer.create_batch()
                    end = start
                    while end < len(records):
                        record = records[end]
                        if batch.append(
                            key=record.key, value=record.value, timestamp=None, headers=list(record.headers)
                        ):
                            end += 1
                        elif end == start:
                            raise ValueError(f"a record of {topic} is larger than the producer's batch size")
                        else:
                            break
                    future = await producer.send_batch(batch, topic, partition=partition)
                    future.add_done_callback(self._delivery_callback(topic, partition, end - start, queue.on_delivered))
                    self.batches_sent += 1
                    submitted += end - start
                    start = end
        return submitted

    def _delivery_callback(
        self, topic: str, partition: int, count: int, on_delivered: Delivered | None
    ) -> Callable[[asyncio.Future[Any]], None]:
        def done(future: asyncio.Future[Any]) -> None:
            if future.cancelled():
                self._failure = self._failure or asyncio.CancelledError()
                return
            error = future.exception()
            if error is not None:
                log.error("a batch of %d records for %s[%d] was not written: %r", count, topic, partition, error)
                self._failure = self._failure or error
                if self._on_failed is not None:
                    self._on_failed(topic, partition, count)
                return
            if on_delivered is not None:
                try:
                    on_delivered(topic, partition, future.result().offset + count - 1)
                except Exception:
                    # E.g. the partition was revoked and its store closed; recovery reads the changelog again.
                    log.exception("could not record the delivered offset of %s[%d]", topic, partition)

        return done
