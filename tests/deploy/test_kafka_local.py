"""deploy/local/kafka.sh: the real local broker starts, serves both client libraries, and stops.

Every broker here runs on ports the kernel hands out and in a temporary data dir, so these tests never
meet the broker of `make run` or the session fixture's one.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka import TopicPartition as AIOTopicPartition
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaTimeoutError

from tests.harness import free_ports

pytestmark = pytest.mark.kafka

KAFKA_SH = Path(__file__).resolve().parents[2] / "deploy" / "local" / "kafka.sh"
# Upper bound for one script call; `start` itself gives up after 60 s.
SCRIPT_TIMEOUT_S = 120
CLIENT_TIMEOUT_S = 30


@dataclass(frozen=True)
class LocalKafka:
    """kafka.sh bound to one port pair and one data dir."""

    env: dict[str, str]
    data_dir: Path

    @classmethod
    def in_dir(cls, data_dir: Path, port: int | None = None) -> LocalKafka:
        client_port, controller_port = free_ports(2)
        # Settings of the caller's shell (for instance the session broker's) must not leak in.
        env = {key: value for key, value in os.environ.items() if not key.startswith("KAFKA_")}
        env |= {
            "KAFKA_PORT": str(port or client_port),
            "KAFKA_CONTROLLER_PORT": str(controller_port),
            "KAFKA_DATA_DIR": str(data_dir),
            "KAFKA_HEAP": "-Xmx256m -Xms128m",
        }
        return cls(env=env, data_dir=data_dir)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.env['KAFKA_PORT']}"

    def run(self, command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(KAFKA_SH), command],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=SCRIPT_TIMEOUT_S,
            check=False,
        )

    def start(self) -> None:
        started = self.run("start")
        assert started.returncode == 0, started.stderr
        assert started.stdout.strip() == self.bootstrap


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    kafka = LocalKafka.in_dir(tmp_path_factory.mktemp("kafka") / "data")
    try:
        kafka.start()
        yield kafka
    finally:
        kafka.run("stop")


@pytest.fixture
def admin(broker: LocalKafka) -> Iterator[Any]:
    client = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        yield client
    finally:
        client.close()


def _new_topic(admin: Any, partitions: int = 2) -> str:
    topic = f"test.kafka-local.{uuid.uuid4().hex[:12]}"
    admin.create_topics({topic: {"num_partitions": partitions, "replication_factor": 1}}, wait_for_metadata=True)
    return topic


def _poll(consumer: Any, count: int) -> list[Any]:
    """Poll until `count` records arrived; bounded so a broken broker fails the test instead of hanging it."""
    records: list[Any] = []
    deadline = time.monotonic() + CLIENT_TIMEOUT_S
    while len(records) < count and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=500).values():
            records.extend(batch)
    return records


def test_lifecycle_start_status_restart_stop_wipe(tmp_path: Path) -> None:
    kafka = LocalKafka.in_dir(tmp_path / "kafka")
    try:
        assert kafka.run("status").returncode == 1
        assert kafka.run("bootstrap").stdout.strip() == kafka.bootstrap

        kafka.start()
        assert kafka.run("status").returncode == 0
        assert (kafka.data_dir / "logs" / "server.log").stat().st_size > 0
        again = kafka.run("start")
        assert again.returncode == 0
        assert "already running" in again.stderr
        assert again.stdout.strip() == kafka.bootstrap

        admin = KafkaAdminClient(bootstrap_servers=kafka.bootstrap)
        try:
            topic = _new_topic(admin)
        finally:
            admin.close()

        assert kafka.run("stop").returncode == 0
        assert kafka.run("status").returncode == 1
        assert not (kafka.data_dir / "kafka.pid").exists()
        assert kafka.run("stop").returncode == 0

        # A restart reuses the formatted storage: the topic is still there.
        kafka.start()
        admin = KafkaAdminClient(bootstrap_servers=kafka.bootstrap)
        try:
            assert topic in admin.list_topics()
        finally:
            admin.close()

        wiped = kafka.run("wipe")
        assert wiped.returncode == 0, wiped.stderr
        assert kafka.run("status").returncode == 1
        assert not kafka.data_dir.exists()
    finally:
        kafka.run("stop")


def test_start_fails_when_the_port_is_taken(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        kafka = LocalKafka.in_dir(tmp_path / "kafka", port=squatter.getsockname()[1])
        try:
            started = kafka.run("start")
            assert started.returncode != 0
            assert "taken by another process" in started.stderr
            assert kafka.run("status").returncode == 1
        finally:
            kafka.run("stop")


def test_wipe_keeps_a_directory_it_did_not_make(tmp_path: Path) -> None:
    foreign = tmp_path / "not-kafka"
    foreign.mkdir()
    (foreign / "precious.txt").write_text("keep me")
    wiped = LocalKafka.in_dir(foreign).run("wipe")
    assert wiped.returncode != 0
    assert (foreign / "precious.txt").read_text() == "keep me"


def test_topics_are_not_created_on_first_use(broker: LocalKafka, admin: Any) -> None:
    topic = f"test.kafka-local.missing.{uuid.uuid4().hex[:12]}"
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, max_block_ms=2000)
    try:
        with pytest.raises(KafkaTimeoutError):
            producer.send(topic, value=b"lost").get(timeout=CLIENT_TIMEOUT_S)
    finally:
        producer.close()
    assert topic not in admin.list_topics()


def test_kafka_python_produce_consume_and_commit(broker: LocalKafka, admin: Any) -> None:
    topic = _new_topic(admin)
    group = f"test.kafka-local.{uuid.uuid4().hex[:12]}"
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
    try:
        sent = producer.send(topic, key=b"k-1", value=b"hello").get(timeout=CLIENT_TIMEOUT_S)
    finally:
        producer.close()

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=broker.bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    try:
        records = _poll(consumer, 1)
        consumer.commit()
    finally:
        consumer.close()

    assert [(record.key, record.value) for record in records] == [(b"k-1", b"hello")]
    committed = admin.list_group_offsets({group: None})[group]
    assert committed[TopicPartition(topic, sent.partition)].offset == sent.offset + 1


async def _aiokafka_round_trip(bootstrap: str, topic: str, group: str) -> tuple[list[Any], int, int | None]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        sent = await producer.send_and_wait(topic, key=b"k-2", value=b"hej")
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), timeout=CLIENT_TIMEOUT_S)
        await consumer.commit()
        committed = await consumer.committed(AIOTopicPartition(topic, sent.partition))
    finally:
        await consumer.stop()
    return [record], sent.offset, committed


def test_aiokafka_produce_consume_in_a_group(broker: LocalKafka, admin: Any) -> None:
    topic = _new_topic(admin)
    group = f"test.kafka-local.{uuid.uuid4().hex[:12]}"
    records, sent_offset, committed = asyncio.run(_aiokafka_round_trip(broker.bootstrap, topic, group))
    assert [(record.key, record.value) for record in records] == [(b"k-2", b"hej")]
    assert committed == sent_offset + 1
