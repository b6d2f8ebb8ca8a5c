"""The suite's side of Kafka: a producer that records where every message landed, and an observer that reads
what the worker made of them (profiles, dead letters) and how far its consumer group has committed."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType

from streams.client.subscriber import ProfileDeleted, ProfileSubscriber
from streams.contract.events import EVENT_TYPES, Event, encode_event
from streams.contract.profile import ProfileUpdated
from streams.contract.topics import DEADLETTER, input_topic
from streams.settings import Settings

log = logging.getLogger(__name__)

Coord = tuple[str, int, int]
"""(topic, partition, offset) of one record."""
MiB = 1024 * 1024
CLIENT_TIMEOUT_MS = 10_000
"""Request timeout of the observer's clients: a broker that is down answers nothing, and the suite must go on
polling (and restarting what needs restarting) rather than wait 30 s per question."""


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One record to produce."""

    topic: str
    key: bytes | None
    value: bytes | None
    partition: int | None = None
    headers: tuple[tuple[str, bytes], ...] = ()


def valid_record(settings: Settings, event: Event) -> Outgoing:
    """A valid event as the producer SDK sends it (``EventProducer.send``): keyed by user id, to its type's topic,
    the contract's JSON bytes."""
    return Outgoing(settings.topic(input_topic(event.type)), event.user_id.encode(), encode_event(event))


class Sender:
    """An idempotent producer (acks=all, the SDK's settings) that returns every record's coordinates."""

    def __init__(self, settings: Settings, max_request_bytes: int = MiB) -> None:
        self._producer = KafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap,
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            max_request_size=max_request_bytes,
            client_id="profilestream-chaos",
        )

    def send(self, records: Sequence[Outgoing]) -> list[Coord]:
        """Send ``records`` in order and wait until all are acknowledged; their coordinates, in the same order."""
        futures = [
            self._producer.send(r.topic, value=r.value, key=r.key, partition=r.partition, headers=list(r.headers))
            for r in records
        ]
        self._producer.flush()
        done = [f.get(timeout=60) for f in futures]
        return [(m.topic, m.partition, m.offset) for m in done]

    def close(self) -> None:
        """Flush and release the connection."""
        self._producer.close()

    def __enter__(self) -> Sender:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def allow_large_records(settings: Settings, topic_types: Sequence[str], max_bytes: int) -> None:
    """Raise ``max.message.bytes`` of some input topics, so records over the broker's 1 MB default reach them."""
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    try:
        admin.alter_configs(
            [
                ConfigResource(
                    ConfigResourceType.TOPIC, settings.topic(input_topic(t)), configs={"max.message.bytes": max_bytes}
                )
                for t in topic_types
            ]
        )
    finally:
        admin.close()


@dataclass(frozen=True, slots=True)
class DeadLetterSeen:
    """One record of the dead-letter topic: where its message came from and why it is there."""

    source: Coord | None
    """None when the record lacks its source headers."""
    reason: str | None
    """The ``ps.reason`` header; None when missing."""
    stage: str | None


def _dead_letter(headers: Sequence[tuple[str, bytes]]) -> DeadLetterSeen:
    values = {k: v.decode("utf-8", errors="replace") for k, v in headers or ()}
    source: Coord | None = None
    try:
        source = (values["ps.source.topic"], int(values["ps.source.partition"]), int(values["ps.source.offset"]))
    except (KeyError, ValueError):
        source = None
    return DeadLetterSeen(source, values.get("ps.reason") or None, values.get("ps.stage"))


class Observer:
    """Follows the worker's output from the start: every profile (latest per user, and whether a user's version
    ever went back), every dead letter, and the committed position of the worker's consumer group."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # Every record as the topic holds it (the SDK's holding subscriber would skip superseded ones): the last
        # one read per user is what a compacted topic keeps, and it is what the scenario judges.
        self.profiles = ProfileSubscriber(settings.kafka_bootstrap, topic_prefix=settings.topic_prefix, hold=False)
        self.latest: dict[str, ProfileUpdated] = {}
        """Each user's last profile read (none after a tombstone)."""
        self.profile_records = 0
        self.tombstones = 0
        self.version_repeats = 0
        """Profiles whose version equals the user's previous one: the same profile published again (a producer's
        retry of a batch the broker had written); harmless to a consumer that keeps the highest version."""
        self.version_regressions = 0
        """Profiles whose version is below the user's previous one: a stale profile after a newer one, which a
        compacted topic could keep as the user's last."""
        self.peak_count: dict[str, int] = {}
        """The highest ``event_count`` ever published per user: above the final one means a stale last profile."""
        self._versions: dict[str, int] = {}
        self.dead_letters: list[DeadLetterSeen] = []
        self._consumer = KafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap,
            group_id=None,
            enable_auto_commit=False,
            request_timeout_ms=CLIENT_TIMEOUT_MS,
            # Dead letters carry their original bytes, which may be far over 1 MB.
            max_partition_fetch_bytes=32 * MiB,
            fetch_max_bytes=64 * MiB,
        )
        dead = settings.topic(DEADLETTER)
        self._dead = [TopicPartition(dead, p) for p in sorted(self._consumer.partitions_for_topic(dead) or ())]
        self._consumer.assign(self._dead)
        self._consumer.seek_to_beginning(*self._dead)
        self._inputs = [
            TopicPartition(settings.topic(input_topic(t)), p) for t in EVENT_TYPES for p in range(settings.partitions)
        ]
        self._admin: Any = None

    def poll(self) -> int:
        """Read what arrived since the last call; returns how many records that was."""
        seen = 0
        for change in self.profiles.poll(timeout_ms=100):
            seen += 1
            if isinstance(change, ProfileDeleted):
                self.tombstones += 1
                self._versions.pop(change.user_id, None)
                self.latest.pop(change.user_id, None)
                continue
            self.latest[change.user_id] = change
            previous = self._versions.get(change.user_id)
            if previous is not None and change.version == previous:
                self.version_repeats += 1
            elif previous is not None and change.version < previous:
                self.version_regressions += 1
            self._versions[change.user_id] = change.version
            self.peak_count[change.user_id] = max(self.peak_count.get(change.user_id, 0), change.event_count)
        self.profile_records += seen
        for records in self._consumer.poll(timeout_ms=100).values():
            for record in records:
                self.dead_letters.append(_dead_letter(record.headers))
                seen += 1
        return seen

    def outstanding(self) -> int | None:
        """Input records the worker's group has not committed yet; None while the broker does not answer."""
        try:
            if self._admin is None:
                self._admin = KafkaAdminClient(
                    bootstrap_servers=self.settings.kafka_bootstrap, request_timeout_ms=CLIENT_TIMEOUT_MS
                )
            committed = self._admin.list_group_offsets({self.settings.app_id: None}).get(self.settings.app_id, {})
            ends = self._consumer.end_offsets(self._inputs)
        except Exception as exc:  # any client error means "not known now"; the caller asks again
            log.info("group position unknown for now: %s", type(exc).__name__)
            self._close_admin()
            return None
        total = 0
        for tp in self._inputs:
            done = committed.get(tp)
            total += max(0, ends[tp] - (done.offset if done is not None and done.offset >= 0 else 0))
        return total

    def _close_admin(self) -> None:
        if self._admin is not None:
            try:
                self._admin.close()
            except Exception:  # closing a broken client: nothing more to do about it
                log.debug("closing the admin client failed", exc_info=True)
            self._admin = None

    def close(self) -> None:
        """Release every connection."""
        self.profiles.close()
        self._consumer.close()
        self._close_admin()
