"""BulkProducer against the real broker: order per partition, batches split at the size limit, delivered offsets,
and the partition of a key equal to what a plain send picks."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from streams.worker.bulk_producer import BulkProducer, DeliveryError

pytestmark = pytest.mark.kafka
PARTITIONS = 3


def _create_topic(bootstrap: str) -> str:
    topic = f"bulk-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    finally:
        admin.close()
    return topic


async def _read_all(bootstrap: str, topic: str, count: int) -> list[tuple[int, int, bytes | None, bytes | None]]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    records: list[tuple[int, int, bytes | None, bytes | None]] = []
    try:
        async with asyncio.timeout(60):
            while len(records) < count:
                for batch in (await consumer.getmany(timeout_ms=500)).values():
                    records.extend((r.partition, r.offset, r.key, r.value) for r in batch)
    finally:
        await consumer.stop()
    return records


def test_staged_records_arrive_in_order_per_partition_with_delivered_offsets(kafka_bootstrap: str) -> None:
    topic = _create_topic(kafka_bootstrap)

    async def scenario() -> tuple[dict[int, int], list[tuple[int, int, bytes | None, bytes | None]], int, int]:
        # A small batch size forces the staged records of a partition into several record batches.
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, max_batch_size=4096, linger_ms=5)
        await producer.start()
        delivered: dict[int, int] = {}
        try:
            bulk = BulkProducer(lambda: producer)
            await bulk.learn_partitions(topic)
            for i in range(300):
                key = f"user-{i % 17}".encode()
                value = None if i % 50 == 49 else f"{i}:".encode() + b"x" * 100
                bulk.stage(topic, bulk.partition_of(topic, key), key, value)
            submitted = bulk.staged
            for (_, partition), offset in (await bulk.publish()).items():
                delivered[partition] = offset
            assert bulk.staged == 0
            plain = await (await producer.send(topic, key=b"user-3", value=b"plain"))
            in_bulk_partition = bulk.partition_of(topic, b"user-3")
        finally:
            await producer.stop()
        records = await _read_all(kafka_bootstrap, topic, 301)
        assert plain.partition == in_bulk_partition
        return delivered, records, submitted, bulk.batches_sent

    delivered, records, submitted, batches = asyncio.run(scenario())
    assert submitted == 300
    assert batches > PARTITIONS  # the size limit split them
    bulk_records = [r for r in records if r[3] != b"plain"]
    assert len(bulk_records) == 300
    for partition in range(PARTITIONS):
        mine = sorted((r for r in bulk_records if r[0] == partition), key=lambda r: r[1])
        # Each key's records keep the order they were staged in; the delivered offset is the partition's last.
        for key in {r[2] for r in mine}:
            staged = [int(v.split(b":")[0]) for _, _, k, v in mine if k == key and v is not None]
            assert staged == sorted(staged)
        if mine:
            assert delivered[partition] == mine[-1][1]
    assert sum(1 for r in bulk_records if r[3] is None) == 6  # tombstones travel as null values


def test_a_batch_the_broker_refuses_is_reported_and_stays_staged_for_the_next_publish(kafka_bootstrap: str) -> None:
    topic = _create_topic(kafka_bootstrap)

    async def scenario() -> tuple[list[tuple[str, int, int]], list[BaseException], int]:
        # The broker takes at most about 1 MiB per record batch (message.max.bytes); this one is larger.
        producer = AIOKafkaProducer(
            bootstrap_servers=kafka_bootstrap, max_batch_size=4 * 1024 * 1024, max_request_size=8 * 1024 * 1024
        )
        await producer.start()
        failed: list[tuple[str, int, int]] = []
        errors: list[BaseException] = []
        try:
            bulk = BulkProducer(lambda: producer, on_failed=lambda t, p, n: failed.append((t, p, n)))
            await bulk.learn_partitions(topic)
            for i in range(3):
                bulk.stage(topic, 0, f"k{i}".encode(), b"x" * (600 * 1024))
            for _ in range(2):
                try:
                    await bulk.publish()
                except DeliveryError as exc:
                    errors.append(exc)
            staged = bulk.staged
        finally:
            await producer.stop()
        return failed, errors, staged

    failed, errors, staged = asyncio.run(scenario())
    # Refused twice, reported twice, and still there to be sent again: never dropped.
    assert failed == [(topic, 0, 3), (topic, 0, 3)]
    assert len(errors) == 2
    assert all(isinstance(e, DeliveryError) for e in errors)
    assert staged == 3
