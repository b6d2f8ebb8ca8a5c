"""Bulk publishing on the worker's own Kafka producer: whole record batches per partition instead of one send each.

faust's ``Topic.send`` costs about as much per record as folding the event that caused it (a future, a pending
message, a buffer hop and callbacks each), and a micro-batch makes one state write and one profile per user.
:class:`BulkProducer` stages records synchronously and :meth:`BulkProducer.publish` hands them to aiokafka as
record batches (``create_batch``/``send_batch``) on the producer faust already runs, then waits until the broker
has acknowledged every batch. The worker writes its local store and acknowledges input offsets only after that,
so store, changelog and committed offsets agree after any crash.

A batch the broker does not take stays staged, in order, in front of anything staged later; the next
:meth:`publish` sends it again. Order is kept per partition: one publish at a time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from streams.worker.partitioner import key_hash

log = logging.getLogger(__name__)

Headers = Sequence[tuple[str, bytes]]
Failed = Callable[[str, int, int], None]
"""Called with (topic, partition, number of records) when a batch could not be written."""
TopicPartition = tuple[str, int]


class DeliveryError(RuntimeError):
    """Some staged batches could not be written to Kafka; they stay staged for the next :meth:`publish`.

    An infrastructure fault (broker down, a topic refusing records): the worker pauses and retries.
    """


@dataclass(slots=True)
class _Staged:
    key: bytes | None
    value: bytes | None
    headers: Headers


@dataclass(slots=True)
class _PartitionQueue:
    records: list[_Staged] = field(default_factory=list)


class BulkProducer:
    """Stages records per (topic, partition) and publishes them as acknowledged record batches.

    ``producer`` is the running ``aiokafka.AIOKafkaProducer`` (faust's); it is looked up on each publish, since
    faust creates it when the app starts.
    """

    def __init__(self, producer: Callable[[], Any], on_failed: Failed | None = None) -> None:
        self._producer = producer
        self._on_failed = on_failed
        self._queues: dict[TopicPartition, _PartitionQueue] = {}
        self._partitions: dict[str, list[int]] = {}
        self._lock = asyncio.Lock()
        self.batches_sent = 0

    @property
    def staged(self) -> int:
        """Records staged and not yet acknowledged by the broker."""
        return sum(len(q.records) for q in self._queues.values())

    def stage(
        self,
        topic: str,
        partition: int,
        key: bytes | None,
        value: bytes | None,
        *,
        headers: Headers = (),
    ) -> None:
        """Queue one record for ``topic``/``partition``."""
        queue = self._queues.setdefault((topic, partition), _PartitionQueue())
        queue.records.append(_Staged(key, value, headers))

    async def learn_partitions(self, topic: str) -> None:
        """Fetch the partitions of ``topic`` once, for :meth:`partition_of`."""
        if topic not in self._partitions:
            found = await self._producer().partitions_for(topic)
            self._partitions[topic] = sorted(found)

    def partition_count(self, topic: str) -> int:
        """How many partitions ``topic`` has; :meth:`learn_partitions` must have run for it."""
        return len(self._partitions[topic])

    def partition_of(self, topic: str, key: bytes) -> int:
        """The partition Kafka's default partitioner (murmur2 of the key) gives ``key``, as faust's sends do;
        :meth:`learn_partitions` must have run for ``topic``."""
        partitions = self._partitions[topic]
        return partitions[key_hash(key) % len(partitions)]

    async def publish(self) -> dict[TopicPartition, int]:
        """Send everything staged and wait until the broker has acknowledged it.

        Returns the offset of the last record written per (topic, partition). Raises :class:`DeliveryError`
        when some batches were not written; those stay staged (in order, before anything staged later) and the
        next call sends them again, while the batches that were written are not sent twice.
        """
        async with self._lock:
            queues, self._queues = self._queues, {}
            sent: list[tuple[TopicPartition, list[_Staged], asyncio.Future[Any]]] = []
            unsent: list[tuple[TopicPartition, list[_Staged]]] = []
            send_error: BaseException | None = None
            producer = self._producer()
            for (topic, partition), queue in queues.items():
                if send_error is not None:
                    unsent.append(((topic, partition), queue.records))
                    continue
                try:
                    chunks = self._batches(producer, topic, queue.records)
                except ValueError as exc:
                    send_error = exc
                    unsent.append(((topic, partition), queue.records))
                    continue
                for n, (chunk, batch) in enumerate(chunks):
                    try:
                        future = await producer.send_batch(batch, topic, partition=partition)
                    except Exception as exc:
                        # E.g. no metadata while the broker is away: this and the rest are sent next time.
                        send_error = exc
                        unsent.append(((topic, partition), [r for c, _ in chunks[n:] for r in c]))
                        break
                    sent.append(((topic, partition), chunk, future))
                    self.batches_sent += 1
            results = await asyncio.gather(*(f for _, _, f in sent), return_exceptions=True)
            delivered: dict[TopicPartition, int] = {}
            failed: list[tuple[TopicPartition, list[_Staged]]] = []
            first_error = send_error
            for (tp, chunk, _), result in zip(sent, results, strict=True):
                if isinstance(result, BaseException):
                    failed.append((tp, chunk))
                    first_error = first_error or result
                    log.error("a batch of %d records for %s[%d] was not written: %r", len(chunk), *tp, result)
                    if self._on_failed is not None:
                        self._on_failed(tp[0], tp[1], len(chunk))
                    continue
                delivered[tp] = max(delivered.get(tp, -1), result.offset + len(chunk) - 1)
            if failed or unsent:
                self._requeue(failed + unsent)
                raise DeliveryError(
                    f"{len(failed)} record batches were not written to Kafka, {len(unsent)} partitions not sent"
                ) from first_error
            return delivered

    def _requeue(self, failed: list[tuple[TopicPartition, list[_Staged]]]) -> None:
        """Put records back in front of whatever was staged since, keeping their order."""
        newer, self._queues = self._queues, {}
        for tp, records in failed:
            self._queues.setdefault(tp, _PartitionQueue()).records.extend(records)
        for tp, queue in newer.items():
            self._queues.setdefault(tp, _PartitionQueue()).records.extend(queue.records)

    @staticmethod
    def _batches(producer: Any, topic: str, records: list[_Staged]) -> list[tuple[list[_Staged], Any]]:
        """The records of one partition cut into record batches of the producer's batch size."""
        out: list[tuple[list[_Staged], Any]] = []
        start = 0
        while start < len(records):
            batch = producer.create_batch()
            end = start
            while end < len(records):
                record = records[end]
                if batch.append(key=record.key, value=record.value, timestamp=None, headers=list(record.headers)):
                    end += 1
                elif end == start:
                    raise ValueError(f"a record of {topic} is larger than the producer's batch size")
                else:
                    break
            out.append((records[start:end], batch))
            start = end
        return out
