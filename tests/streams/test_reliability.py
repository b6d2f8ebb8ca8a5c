"""No valid event is lost, against the real broker: a backlog across the three topics, poison next to valid
events, a message on the wrong partition, and a kill between the changelog write and the store write."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kafka import KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

from streams.contract.events import BrowseEvent, Event, encode_event
from streams.contract.topics import DEADLETTER, input_topic
from streams.settings import Settings
from streams.worker.partitioner import partition_for_key
from tests.harness import (
    ProfileLog,
    WorkerProcess,
    all_records,
    demo_events,
    expected_counts,
    send_events,
    wait_until,
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def _dead_letters(settings: Settings) -> list[dict[str, object]]:
    """Every record on the dead-letter topic so far (read to its end offsets, so an empty answer means the topic
    is empty, not that a read timed out), with its headers decoded."""
    records = all_records(settings.kafka_bootstrap, settings.topic(DEADLETTER))
    return [{"key": key, "value": value, **{k: v.decode() for k, v in headers}} for key, value, headers in records]


def test_a_backlog_over_all_three_topics_is_folded_without_a_too_late_event(
    make_settings: Callable[..., Settings], start_worker: Callable[..., WorkerProcess]
) -> None:
    settings = make_settings()
    # 12,000 events one second apart: 3.3 hours of event time, over three times the allowed lateness.
    events = demo_events(users=800, count=12_000, seed=42)
    send_events(settings, events)
    log = ProfileLog(settings)
    worker = start_worker(settings)
    log.wait_caught_up(expected_counts(events), 300, "every event of the backlog", workers=(worker,))
    reasons = [letter["ps.reason"] for letter in _dead_letters(settings)]
    assert reasons == [], "a valid backlog produces no dead letter"


def _raw_producer(settings: Settings) -> KafkaProducer:
    return KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, max_request_size=4 * 1024 * 1024)


def _allow_large_messages(settings: Settings, topic_type: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    try:
        resource = ConfigResource(
            ConfigResourceType.TOPIC, settings.topic(input_topic(topic_type)), configs={"max.message.bytes": "3000000"}
        )
        admin.alter_configs([resource])
    finally:
        admin.close()


def test_poison_and_a_wrong_partition_cost_only_themselves(
    make_settings: Callable[..., Settings], start_worker: Callable[..., WorkerProcess]
) -> None:
    settings = make_settings()
    _allow_large_messages(settings, "browse")
    worker = start_worker(settings)
    good = demo_events(users=100, count=1_000, seed=5)
    ts = good[0].ts_ms
    victim = good[0].user_id
    wrong = BrowseEvent(event_id="wrong-partition", user_id=victim, ts_ms=ts, item_id="i-1")
    right_partition = partition_for_key(victim.encode(), settings.partitions)
    nested = b'{"a":' * 2000 + b"1" + b"}" * 2000
    surrogate = json.dumps(
        {"schema": 1, "event_id": "s", "user_id": "u-\ud800", "type": "browse", "ts": ts, "item_id": "i"}
    ).encode()
    huge = b'{"schema":1,"pad":"' + b"x" * 1_100_000 + b'"}'
    poison: list[tuple[bytes | None, bytes, int | None, str]] = [
        (b"u-nested", nested, None, "not_json"),
        (b"u-surrogate", surrogate, None, "invalid_value"),
        (b"u-huge", huge, None, "too_large"),
        (victim.encode(), encode_event(wrong), (right_partition + 1) % settings.partitions, "wrong_partition"),
    ]
    producer = _raw_producer(settings)
    try:
        # Poison in the middle of the valid events, so it shares micro-batches with them.
        send_events(settings, good[:500])
        for key, value, partition, _ in poison:
            producer.send(settings.topic(input_topic("browse")), key=key, value=value, partition=partition)
        producer.flush()
        send_events(settings, good[500:])
    finally:
        producer.close()
    log = ProfileLog(settings)
    log.wait_caught_up(expected_counts(good), 180, "every valid event next to the poison", workers=(worker,))
    letters = _dead_letters(settings)
    assert sorted(str(x["ps.reason"]) for x in letters) == sorted(p[3] for p in poison)
    [big] = [x for x in letters if x["ps.reason"] == "too_large"]
    assert big["ps.truncated"] == "value"
    assert int(str(big["ps.original.value.size"])) == len(huge)
    assert len(big["value"]) < len(huge)  # type: ignore[arg-type]
    assert worker.proc.poll() is None


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 24 MiB tmpfs for the worker's state: a disk that can be filled, and lost."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)], check=False)
    if done.returncode != 0:
        pytest.fail("mounting a tmpfs failed: this test needs root (CI runs as root)")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(directory: Path) -> None:
    """Fill the file system of ``directory`` to the last byte."""
    with (directory / "filler").open("wb") as out:
        chunk = b"\0" * (1 << 20)
        try:
            while True:
                out.write(chunk)
                out.flush()
        except OSError:
            pass
    try:
        with (directory / "filler-tail").open("wb") as out:
            while True:
                out.write(b"\0" * 4096)
                out.flush()
    except OSError:
        pass


def test_a_kill_between_changelog_and_store_then_a_restore_from_the_changelog_loses_nothing(
    make_settings: Callable[..., Settings],
    start_worker: Callable[..., WorkerProcess],
    small_disk: Path,
    tmp_path: Path,
) -> None:
    settings = make_settings(state_dir=small_disk / "state")
    events: list[Event] = demo_events(users=200, count=3_000, seed=9)
    log = ProfileLog(settings)
    worker = start_worker(settings)
    send_events(settings, events[:1_500])
    log.wait_caught_up(expected_counts(events[:1_500]), 180, "the first half", workers=(worker,))
    # The disk fills: the changelog still takes the next changes, the store cannot. The worker must pause and
    # retry, not dead-letter; then it dies in exactly that window and its disk is gone.
    _fill(small_disk)
    send_events(settings, events[1_500:])
    wait_until(lambda: "store failed" in worker.log_text(), 120, "the worker to retry a store write")
    assert not _dead_letters(settings), "a full disk is no reason to dead-letter events"
    worker.kill()
    # A new worker on a new disk restores from the changelog and finishes the rest.
    fresh = settings.model_copy(update={"state_dir": tmp_path / "fresh-state"})
    worker = start_worker(fresh, name="after-restore")
    log.wait_caught_up(expected_counts(events), 240, "every event after the restore", workers=(worker,))
    counts = {user: updates[-1].event_count for user, updates in log.updates.items()}
    assert counts == {user: want[0] for user, want in expected_counts(events).items()}, "no event lost or applied twice"
