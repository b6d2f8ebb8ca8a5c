"""The erasure bound in the topics, against the real broker: after an erasure, the user's old profile and state
values are compacted away from ``profiles.updated`` and the changelog, and then the tombstones too, once the
bound has passed and the partitions received more records (the log cleaner forced by the topics'
``max.compaction.lag.ms``, not waited for by the dirty ratio); the user's dead letters are deleted by retention;
and ``topics create`` sets the bound's configs on existing topics."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

from streams.client.admin import create_topics
from streams.client.erasure_bound import compaction_configs, time_bound_configs
from streams.client.producer import EventProducer
from streams.contract.events import BrowseEvent, Event
from streams.contract.topics import DEADLETTER, PROFILES, input_topic
from streams.settings import Settings
from streams.worker.backfill import changelog_topic
from streams.worker.partitioner import partition_for_key
from tests.harness import ProfileLog, WorkerProcess, all_records, send_events, wait_until

pytestmark = pytest.mark.kafka
T0 = 1_767_225_600_000
USER = "bounded-erasure-user"
BOUND_MS = 6000


def _records_of(settings: Settings, topic: str, key: bytes) -> list[bytes | None]:
    """Every value ``key`` still has in ``topic``, read from the start (None: a tombstone)."""
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False, group_id=None)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        found: list[bytes | None] = []
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            for records in consumer.poll(timeout_ms=500).values():
                found.extend(record.value for record in records if record.key == key)
        return found
    finally:
        consumer.close()


def _fillers(partitions: int) -> list[str]:
    """One user per partition: records that keep every partition's segments rolling."""
    chosen: dict[int, str] = {}
    n = 0
    while len(chosen) < partitions:
        user = f"filler-{n}"
        chosen.setdefault(partition_for_key(user.encode(), partitions), user)
        n += 1
    return list(chosen.values())


def test_old_values_and_then_tombstones_leave_the_compacted_topics_within_the_bound(
    make_settings: Callable[..., Settings], start_worker: Callable[..., WorkerProcess]
) -> None:
    settings = make_settings(erasure_bound_ms=BOUND_MS)
    topics = (settings.topic(PROFILES), changelog_topic(settings))
    profiles = ProfileLog(settings)
    worker = start_worker(settings)
    events: list[Event] = [BrowseEvent(event_id=f"e{i}", user_id=USER, ts_ms=T0 + i, item_id="i") for i in range(3)]
    send_events(settings, events)
    profiles.wait_caught_up({USER: (3, T0 + 2)}, 90, "the profile", workers=(worker,))
    assert all(any(v is not None for v in _records_of(settings, t, USER.encode())) for t in topics)

    producer = EventProducer.from_settings(settings)
    producer.request_erasure(USER)
    producer.flush()
    fillers = _fillers(settings.partitions)
    sent = [0]

    def records_after_more_traffic() -> list[list[bytes | None]]:
        sent[0] += 1
        for user in fillers:
            producer.browse(user, "i", ts_ms=T0 + 1000 + sent[0], event_id=f"{user}-{sent[0]}")
        producer.flush()
        time.sleep(1)
        return [_records_of(settings, t, USER.encode()) for t in topics]

    wait_until(lambda: all(v is None for found in records_after_more_traffic() for v in found), 180,
               "only tombstones of the erased user in the profile topic and the changelog", workers=(worker,),
               poll_s=0)  # fmt: skip
    wait_until(lambda: not any(records_after_more_traffic()), 180, "the tombstones to be compacted away too",
               workers=(worker,), poll_s=0)  # fmt: skip
    producer.close()
    assert worker.stop() == 0


def test_the_dead_letters_of_an_erased_user_are_deleted_within_the_bound(
    make_settings: Callable[..., Settings], start_worker: Callable[..., WorkerProcess]
) -> None:
    settings = make_settings(erasure_bound_ms=BOUND_MS)
    user = f"dead-letter-user-{uuid.uuid4().hex}"
    query = f"a search text only this user typed {uuid.uuid4().hex}"
    worker = start_worker(settings)
    # A search event without its event id: rejected, and dead-lettered with its original bytes.
    bad = {"schema": 1, "user_id": user, "type": "search", "ts": T0, "query": query}
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    producer.send(settings.topic(input_topic("search")), key=user.encode(), value=json.dumps(bad).encode())
    producer.flush()
    producer.close()
    needles = (user.encode(), query.encode())
    topic = settings.topic(DEADLETTER)

    def holding_the_user() -> list[bytes | None]:
        return [
            key
            for key, value, headers in all_records(settings.kafka_bootstrap, topic)
            if any(n in (key or b"") + (value or b"") + b"".join(v for _, v in headers) for n in needles)
        ]

    wait_until(lambda: bool(holding_the_user()), 90, "the dead letter", workers=(worker,))
    with EventProducer.from_settings(settings) as erasures:
        erasures.request_erasure(user)
        erasures.flush()
    # Retention deletes the segment once its newest record is older than the retention (the broker checks
    # every log.retention.check.interval.ms: a minute on the local broker).
    wait_until(lambda: not holding_the_user(), 180, "no dead letter naming the erased user", workers=(worker,),
               poll_s=2, detail=holding_the_user)  # fmt: skip
    assert worker.stop() == 0


def _topic_configs(settings: Settings, topic: str) -> dict[str, str]:
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    try:
        described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    finally:
        admin.close()
    return {key: entry["value"] for key, entry in described["topic"][topic].items()}


def _alter(settings: Settings, topic: str, configs: dict[str, str]) -> None:
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    try:
        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs=configs)], incremental=True)
    finally:
        admin.close()


def test_topics_create_sets_the_bound_on_an_existing_profile_topic(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(erasure_bound_ms=BOUND_MS)  # creates the topics
    shorter = settings.model_copy(update={"erasure_bound_ms": BOUND_MS // 2})
    assert create_topics(shorter)[settings.topic(PROFILES)] == "exists"
    values = _topic_configs(settings, settings.topic(PROFILES))
    assert {key: values.get(key) for key in compaction_configs(shorter)} == compaction_configs(shorter)


def test_topics_create_makes_the_changelog_and_sets_the_bound_on_an_existing_one(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(erasure_bound_ms=BOUND_MS)  # creates the topics, the changelog among them
    topic = changelog_topic(settings)
    values = _topic_configs(settings, topic)
    assert {key: values.get(key) for key in compaction_configs(settings)} == compaction_configs(settings)
    # A changelog as faust made it before the bound was set (its defaults), then topics create once more.
    day_ms = str(24 * 3600 * 1000)
    _alter(settings, topic, {"max.compaction.lag.ms": "9223372036854775807", "delete.retention.ms": day_ms})
    assert _topic_configs(settings, topic)["delete.retention.ms"] == day_ms
    assert create_topics(settings)[topic] == "exists"
    values = _topic_configs(settings, topic)
    assert {key: values.get(key) for key in compaction_configs(settings)} == compaction_configs(settings)


def test_topics_create_sets_the_bound_on_an_existing_dead_letter_topic(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(erasure_bound_ms=BOUND_MS)
    topic = settings.topic(DEADLETTER)
    values = _topic_configs(settings, topic)
    assert {key: values.get(key) for key in time_bound_configs(settings)} == time_bound_configs(settings)
    # The topic as topics create made it before: 30 days, the producer's timestamps.
    _alter(settings, topic, {"retention.ms": str(30 * 24 * 3600 * 1000), "message.timestamp.type": "CreateTime"})
    assert create_topics(settings)[topic] == "exists"
    values = _topic_configs(settings, topic)
    assert {key: values.get(key) for key in time_bound_configs(settings)} == time_bound_configs(settings)
