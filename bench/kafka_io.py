"""The benchmark's own Kafka clients (confluent-kafka, from the ``bench`` extra): loading and recording.

They are not what is measured, so they use the fastest client at hand: librdkafka does the network work in its
own threads and leaves the Python thread free. Messages are partitioned with murmur2, as the producer SDK
(kafka-python) and the Java clients do, so a user lands on the same partition as in production.
"""

from __future__ import annotations

import time
from array import array
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.load import Message, user_index
from bench.profile_fields import PROFILE_FIELDS

from confluent_kafka import (  # type: ignore[import-untyped,import-not-found,unused-ignore]  # isort: skip
    Consumer,
    KafkaException,
    Producer,
    TopicPartition,
)


def new_producer(bootstrap: str, *, linger_ms: float) -> Any:
    """A producer with the SDK's delivery guarantees (acks=all, idempotent) and murmur2 partitioning."""
    return Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": linger_ms,
            "partitioner": "murmur2_random",
            "queue.buffering.max.messages": 500_000,
            "queue.buffering.max.kbytes": 262_144,
            "batch.size": 1_000_000,
        }
    )


class DeliveryErrors:
    """Delivery callback that counts failed messages by error (a silent loss would fake a fast load)."""

    def __init__(self) -> None:
        self.errors: dict[str, int] = {}

    def __call__(self, error: Any, message: Any) -> None:
        if error is not None:
            self.errors[str(error)] = self.errors.get(str(error), 0) + 1

    def check(self) -> None:
        """Raise when any message failed."""
        if self.errors:
            raise RuntimeError(f"events were not delivered: {self.errors}")


def produce(producer: Any, topic: str, message: Message, on_delivery: DeliveryErrors) -> None:
    """Queue one message, waiting for room when the local queue is full."""
    _, key, value = message
    while True:
        try:
            producer.produce(topic, value=value, key=key, on_delivery=on_delivery)
            return
        except BufferError:
            producer.poll(0.05)


@dataclass(frozen=True)
class LoadResult:
    """What a pre-load sent and how fast."""

    events: int
    value_bytes: int
    seconds: float

    @property
    def events_per_s(self) -> float:
        """Events acknowledged per second."""
        return self.events / self.seconds if self.seconds > 0 else 0.0


def preload(bootstrap: str, topics: Mapping[str, str], messages: Iterable[Message]) -> LoadResult:
    """Send every message to the topic of its event type (``topics``) as fast as the broker takes them.

    Returns once all are acknowledged; raises when any was not.
    """
    producer = new_producer(bootstrap, linger_ms=20)
    errors = DeliveryErrors()
    started = time.perf_counter()
    count = size = 0
    for message in messages:
        produce(producer, topics[message[0]], message, errors)
        count += 1
        size += len(message[2])
        if count % 10_000 == 0:
            producer.poll(0)
    remaining = producer.flush(120)
    if remaining:
        raise RuntimeError(f"{remaining} events were not acknowledged by the broker")
    errors.check()
    return LoadResult(count, size, time.perf_counter() - started)


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """The current end offset of every partition of ``topic``."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-offsets", "enable.auto.commit": False})
    try:
        metadata = consumer.list_topics(topic, timeout=30)
        partitions = metadata.topics[topic].partitions
        if not partitions:
            raise RuntimeError(f"topic {topic} does not exist")
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1] for p in sorted(partitions)}
    finally:
        consumer.close()


class ProfileRecorder:
    """Reads ``profiles.updated`` from given offsets and keeps, per profile, what the measurements need.

    For each profile: the user index, ``event_count``, ``last_event_ts``, ``updated_at`` (when the worker made
    it; the Kafka timestamp will not do, since Quix Streams gives an output message its input's timestamp), the
    time this process read it, and its key plus value bytes. Once told what to :meth:`expect` (events per user
    index), :attr:`done` turns true when every user's latest profile counts all of the user's events.
    """

    def __init__(self, bootstrap: str, topic: str, start: dict[int, int], users: int) -> None:
        self.topic = topic
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"bench-recorder-{time.time_ns()}",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 5,
                "fetch.min.bytes": 1,
                "enable.partition.eof": False,
            }
        )
        self._consumer.assign([TopicPartition(topic, p, offset) for p, offset in start.items()])
        self.user = array("q")
        self.event_count = array("q")
        self.last_event_ts_ms = array("q")
        self.updated_ms = array("q")
        self.read_ms = array("q")
        self.folded_total = array("q")
        """Events folded across all users once each profile was made, as far as the profiles read so far show."""
        self._total = 0
        self.record_bytes = 0
        self.unparsed = 0
        self._expected: np.ndarray | None = None
        self._latest = np.zeros(users, dtype=np.int64)
        self.remaining = 0

    def expect(self, expected: np.ndarray) -> None:
        """Events per user index that the worker will have folded once it is done (replaces any earlier)."""
        if expected.shape[0] != self._latest.shape[0]:
            raise ValueError("expected needs one count per user index")
        self._expected = np.asarray(expected, dtype=np.int64)
        self.remaining = int(np.count_nonzero(self._latest < self._expected))

    @property
    def folded(self) -> int:
        """Events folded so far, as far as the profiles read show."""
        return self._total

    @property
    def count(self) -> int:
        """Profiles read so far."""
        return len(self.user)

    @property
    def done(self) -> bool:
        """Every expected user has a profile that counts all of their events."""
        return self._expected is not None and self.remaining == 0

    def poll(self, timeout_s: float = 0.1) -> int:
        """Read what is available (waiting at most ``timeout_s``); returns the number of profiles read."""
        # consume() would wait for its whole timeout unless 5,000 records arrive, and every record would be stamped
        # that late: wait for the first record only, then take what is already there.
        first = self._consumer.poll(timeout_s)
        if first is None:
            return 0
        messages = [first, *self._consumer.consume(num_messages=5000, timeout=0)]
        now_ms = time.time_ns() // 1_000_000
        expected, latest = self._expected, self._latest
        read = 0
        for message in messages:
            error = message.error()
            if error is not None:
                raise KafkaException(error)
            value = message.value()
            key = message.key()
            if value is None or key is None:
                continue
            found = PROFILE_FIELDS.search(value)
            if found is None:
                self.unparsed += 1
                continue
            user = user_index(key)
            count = int(found.group(3))
            self.user.append(user)
            self.event_count.append(count)
            self.last_event_ts_ms.append(int(found.group(2)))
            self.updated_ms.append(int(found.group(1)))
            self.read_ms.append(now_ms)
            self.record_bytes += len(key) + len(value)
            read += 1
            previous = int(latest[user])
            if count > previous:
                if expected is not None and previous < expected[user] <= count:
                    self.remaining -= 1
                self._total += count - previous
                latest[user] = count
            self.folded_total.append(self._total)
        return read

    def close(self) -> None:
        """Leave the topic."""
        self._consumer.close()
