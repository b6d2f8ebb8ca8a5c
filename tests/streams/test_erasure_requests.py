"""Erasure requests against the real broker: a valid one erases, a malformed one is dead-lettered and erases
nothing, one for a user without state still publishes a tombstone (a profile may outlive its state); each is
counted, and the log names requests, not users."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from bench.procs import free_port, settings_env
from streams.client.producer import EventProducer
from streams.contract.events import BrowseEvent, Event
from streams.contract.topics import DEADLETTER, ERASURE, PROFILES
from streams.settings import Settings
from tests.conftest import REPO_ROOT
from tests.harness import ProfileLog, WorkerProcess, latest_values, send_events, wait_until, worker_samples

pytestmark = pytest.mark.kafka
T0 = 1_767_225_600_000
ERASED, KEPT, UNKNOWN, UNKNOWN_CLI = "erase-this-user", "keep-this-user", "never-seen-user", "never-seen-cli"


def _erasure_counts(settings: Settings) -> dict[str, float]:
    return {
        sample.labels["outcome"]: sample.value
        for sample in worker_samples(settings)
        if sample.name == "profilestream_erasure_requests_total"
    }


def _dead_letters(settings: Settings) -> list[dict[str, bytes]]:
    """The headers of every record on the dead-letter topic."""
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False, group_id=None)
    topic = settings.topic(DEADLETTER)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        headers: list[dict[str, bytes]] = []
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            for records in consumer.poll(timeout_ms=500).values():
                headers.extend(dict(record.headers) for record in records)
        return headers
    finally:
        consumer.close()


def test_erasure_requests_are_validated_executed_counted_and_logged_without_users(
    make_settings: Callable[..., Settings], start_worker: Callable[..., WorkerProcess]
) -> None:
    settings = make_settings(metrics_port=free_port())
    profiles = ProfileLog(settings)
    worker = start_worker(settings)
    events: list[Event] = [
        BrowseEvent(event_id=f"{u}-{i}", user_id=u, ts_ms=T0 + i, item_id="i") for u in (ERASED, KEPT) for i in range(3)
    ]
    send_events(settings, events)
    profiles.wait_caught_up({ERASED: (3, T0 + 2), KEPT: (3, T0 + 2)}, 90, "both profiles",
               workers=(worker,))  # fmt: skip

    # Three malformed requests for the kept user: a key alone, the value the SDK sent before the contract, garbage.
    raw = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    legacy = json.dumps({"schema": 1, "user_id": KEPT, "requested_at": T0}).encode()
    for value in (None, legacy, b"erase everyone"):
        raw.send(settings.topic(ERASURE), key=KEPT.encode(), value=value)
    raw.flush()
    raw.close()
    with EventProducer.from_settings(settings) as producer:
        request_id = producer.request_erasure(ERASED, reason="account_closed")
        producer.request_erasure(UNKNOWN)
    cli = subprocess.run(
        [sys.executable, "-m", "streams.cli", "--cli-log-level", "warning", "erase", UNKNOWN_CLI, "--reason",
         "legal_order"],
        env=settings_env(settings), cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    assert cli.stdout.startswith("erasure requested: request id ")

    wanted = {"executed": 1.0, "unknown_user": 2.0, "rejected": 3.0}
    wait_until(lambda: _erasure_counts(settings) == wanted, 60, "every request handled", workers=(worker,),
               detail=lambda: _erasure_counts(settings))  # fmt: skip

    latest = latest_values(settings.kafka_bootstrap, settings.topic(PROFILES))
    assert latest[ERASED.encode()] is None, "a tombstone for the erased user"
    assert latest[KEPT.encode()] is not None, "malformed requests erase nothing"
    # No state here, but a profile may be on the topic all the same (an earlier app id's, a failed backfill's).
    assert latest[UNKNOWN.encode()] is None and latest[UNKNOWN_CLI.encode()] is None, "a tombstone all the same"

    letters = [h for h in _dead_letters(settings) if h.get("ps.stage") == b"erasure"]
    assert sorted(h["ps.reason"] for h in letters) == [b"missing_field", b"missing_field", b"not_json"]
    assert {h["ps.source.topic"] for h in letters} == {settings.topic(ERASURE).encode()}

    assert worker.stop() == 0
    log = worker.log_text()
    assert f"erasure request {request_id} executed (reason account_closed)" in log
    for user in (ERASED, KEPT, UNKNOWN, UNKNOWN_CLI):
        assert user not in log, "no user id in the worker's log"
