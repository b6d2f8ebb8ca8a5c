"""LagMonitor against real brokers: the lag from ListOffsets, an unreachable broker, and a broker that stops and
comes back."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from prometheus_client import CollectorRegistry

from bench.procs import free_port
from streams.worker.lag_monitor import KafkaEndOffsets, LagMonitor, Partition
from streams.worker.metrics import WorkerMetrics
from tests.conftest import KAFKA_SCRIPT

pytestmark = pytest.mark.kafka

TIMEOUT_S = 3.0
HANG_GUARD_S = 60.0
"""Far above TIMEOUT_S: a refresh that has not ended by then hangs, whatever the machine's speed."""


def create_topic(bootstrap: str, partitions: int = 2) -> str:
    topic = f"lag-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        admin.close()
    return topic


def produce(bootstrap: str, topic: str, partition: int, count: int) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    try:
        for i in range(count):
            producer.send(topic, value=f"record-{i}".encode(), partition=partition)
        producer.flush(timeout=30)
    finally:
        producer.close()


async def nothing_processed(tp: Partition) -> int | None:
    # A worker that has processed nothing yet, from a fresh group: its position is the partition's start.
    return 0


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.worker = WorkerMetrics(self.registry, process_metrics=False)

    def lag(self, tp: Partition) -> float | None:
        labels = {"topic": tp[0], "partition": str(tp[1])}
        return self.registry.get_sample_value("profilestream_consumer_lag_messages", labels)

    def broker_up(self) -> float | None:
        return self.registry.get_sample_value("profilestream_broker_up")

    def unreachable(self) -> float | None:
        return self.registry.get_sample_value("profilestream_broker_unreachable_total")


def test_lag_from_end_offsets_held_while_the_broker_is_unreachable(kafka_bootstrap: str) -> None:
    topic = create_topic(kafka_bootstrap)
    p0, p1 = (topic, 0), (topic, 1)
    produce(kafka_bootstrap, topic, 0, 30)
    produce(kafka_bootstrap, topic, 1, 12)
    metrics = Metrics()
    # The test re-points the monitor's own client to stand for an outage of the shared session broker.
    source = KafkaEndOffsets(kafka_bootstrap, request_timeout_s=TIMEOUT_S)
    monitor = LagMonitor(kafka_bootstrap, metrics.worker, nothing_processed, source=source, timeout_s=TIMEOUT_S)

    async def scenario() -> None:
        await monitor.start()
        assert metrics.broker_up() == 1
        # Offsets 0..9 of partition 0 processed; nothing of partition 1 (its fallback position is 0).
        await monitor.refresh([p0, p1], {p0: 9})
        assert (metrics.lag(p0), metrics.lag(p1)) == (20, 12)
        assert monitor.end_offsets == {p0: 30, p1: 12}

        await monitor.stop()
        source.bootstrap_servers = f"127.0.0.1:{free_port()}"
        produce(kafka_bootstrap, topic, 0, 5)  # new input the monitor cannot see
        # The worker drained what it had fetched. The refresh must end (bounded by the monitor's timeout): a hang
        # guard far above it, not a timing assertion.
        await asyncio.wait_for(monitor.refresh([p0, p1], {p0: 29}), HANG_GUARD_S)
        assert metrics.broker_up() == 0
        assert metrics.unreachable() == 1
        assert (metrics.lag(p0), metrics.lag(p1)) == (20, 12)  # held, not 0

        source.bootstrap_servers = kafka_bootstrap
        await monitor.refresh([p0, p1], {p0: 29})
        assert metrics.broker_up() == 1
        assert (metrics.lag(p0), metrics.lag(p1)) == (5, 12)  # 35 - 30: the true figure at once
        await monitor.stop()

    asyncio.run(scenario())


def test_a_monitor_whose_broker_never_answers(kafka_bootstrap: str) -> None:
    metrics = Metrics()
    monitor = LagMonitor(f"127.0.0.1:{free_port()}", metrics.worker, nothing_processed, timeout_s=TIMEOUT_S)
    tp = ("events.browse", 0)

    async def scenario() -> None:
        await asyncio.wait_for(monitor.start(), HANG_GUARD_S)
        await asyncio.wait_for(monitor.refresh([tp], {tp: 41}), HANG_GUARD_S)
        await monitor.stop()

    asyncio.run(scenario())
    assert metrics.broker_up() == 0
    assert metrics.unreachable() == 2
    assert metrics.lag(tp) is None  # no end offset was ever known: no made-up lag


# -- a broker of this test's own, stopped and started again ------------------------------------------------


class PrivateBroker:
    """A local broker on free ports with its data under the test's tmp dir (never the session broker)."""

    def __init__(self, data_dir: Path) -> None:
        self.env = {
            **os.environ,
            "KAFKA_PORT": str(free_port()),
            "KAFKA_CONTROLLER_PORT": str(free_port()),
            "KAFKA_DATA_DIR": str(data_dir),
        }
        self.bootstrap = f"127.0.0.1:{self.env['KAFKA_PORT']}"

    def run(self, command: str) -> None:
        done = subprocess.run(
            ["bash", str(KAFKA_SCRIPT), command], env=self.env, capture_output=True, text=True, timeout=180, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"kafka.sh {command} failed ({done.returncode}):\n{done.stderr[-4000:]}")


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[PrivateBroker]:
    broker = PrivateBroker(tmp_path / "kafka")
    broker.run("start")
    try:
        yield broker
    finally:
        broker.run("wipe")


@pytest.mark.slow
def test_a_broker_that_stops_and_comes_back(kafka_bootstrap: str, private_broker: PrivateBroker) -> None:
    # kafka_bootstrap only makes sure the jars are there and keeps this with the other broker tests.
    bootstrap = private_broker.bootstrap
    topic = create_topic(bootstrap, partitions=1)
    tp = (topic, 0)
    produce(bootstrap, topic, 0, 40)
    metrics = Metrics()
    monitor = LagMonitor(bootstrap, metrics.worker, nothing_processed, timeout_s=TIMEOUT_S)

    async def scenario() -> None:
        await monitor.start()
        await monitor.refresh([tp], {tp: 14})
        assert metrics.lag(tp) == 25
        # The broker goes away under an established connection.
        await asyncio.to_thread(private_broker.run, "stop")
        for _ in range(2):
            await asyncio.wait_for(monitor.refresh([tp], {tp: 39}), HANG_GUARD_S)
            assert metrics.broker_up() == 0
            assert metrics.lag(tp) == 25
        assert metrics.unreachable() == 2
        await asyncio.to_thread(private_broker.run, "start")
        await asyncio.to_thread(produce, bootstrap, topic, 0, 10)
        deadline = time.monotonic() + 60
        while metrics.broker_up() != 1 and time.monotonic() < deadline:
            await monitor.refresh([tp], {tp: 39})
        assert metrics.broker_up() == 1
        assert metrics.lag(tp) == 10  # 50 - 40
        await monitor.stop()

    asyncio.run(scenario())
