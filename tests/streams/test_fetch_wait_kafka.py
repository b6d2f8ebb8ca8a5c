"""The fetch wait while input records wait to be taken, against the real broker: the fetch aiokafka sends then
(quiet partitions only) carries the short wait, and the next one with the inputs in it the consumer's own."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from streams.worker.faust_seam import wait_while_buffered

pytestmark = pytest.mark.kafka

IDLE_WAIT_MS = 1_500
BUSY_WAIT_MS = 40
HANG_GUARD_S = 60.0
"""Far above any fetch's wait: a condition not met by then will not be."""


def create_topics(bootstrap: str, *names: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(name, 1, 1) for name in names])
    finally:
        admin.close()


def produce(bootstrap: str, topic: str, count: int) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    try:
        for i in range(count):
            producer.send(topic, value=f"record-{i}".encode())
        producer.flush(timeout=30)
    finally:
        producer.close()


class SentFetches:
    """Each fetch request the fetcher builds: its wait and the topics it asks for."""

    def __init__(self, fetcher: Any) -> None:
        self.sent: list[tuple[int, frozenset[str]]] = []
        build = fetcher._get_actions_per_node

        def recorded(assignment: Any) -> Any:
            actions = build(assignment)
            for _node, request in actions[0]:
                self.sent.append((request._max_wait_ms, frozenset(topic for topic, _ in request.topics)))
            return actions

        fetcher._get_actions_per_node = recorded

    async def until(self, wanted: Any) -> tuple[int, frozenset[str]]:
        async with asyncio.timeout(HANG_GUARD_S):
            while True:
                for fetch in self.sent:
                    if wanted(fetch):
                        return fetch
                await asyncio.sleep(0.01)


@pytest.mark.parametrize("busy_wait_ms", [BUSY_WAIT_MS, IDLE_WAIT_MS])
def test_a_fetch_sent_while_inputs_are_buffered_carries_the_busy_wait(kafka_bootstrap: str, busy_wait_ms: int) -> None:
    suffix = uuid.uuid4().hex[:8]
    inputs, quiet = f"wait-in-{suffix}", f"wait-quiet-{suffix}"
    create_topics(kafka_bootstrap, inputs, quiet)
    produce(kafka_bootstrap, inputs, 20)

    async def scenario() -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=kafka_bootstrap,
            fetch_max_wait_ms=IDLE_WAIT_MS,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        consumer.assign([TopicPartition(inputs, 0), TopicPartition(quiet, 0)])
        await consumer.start()
        try:
            wait_while_buffered(consumer._fetcher, lambda: frozenset({inputs}), busy_wait_ms)
            fetches = SentFetches(consumer._fetcher)
            # Nothing taken yet: once the input's records are buffered, the next fetch leaves it out.
            wait_ms, _ = await fetches.until(lambda fetch: fetch[1] == {quiet})
            assert wait_ms == busy_wait_ms
            taken = await consumer.getmany(timeout_ms=int(HANG_GUARD_S * 1000))
            assert sum(len(records) for records in taken.values()) == 20
            # Taken: the input is fetched again, with the consumer's own wait.
            wait_ms, _ = await fetches.until(lambda fetch: inputs in fetch[1])
            assert wait_ms == IDLE_WAIT_MS
        finally:
            await consumer.stop()

    asyncio.run(scenario())
