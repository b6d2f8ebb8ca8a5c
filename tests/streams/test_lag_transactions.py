"""A producer that writes in transactions, against the real broker: each commit leaves a marker at the end of the
partition, an offset that holds no event. Once the worker has folded every event its lag must read 0, not 1
for good (which ProfilestreamConsumerStalled would page on)."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from kafka import KafkaProducer

from bench.procs import free_port
from streams.contract.events import BrowseEvent, Event, encode_event
from streams.settings import Settings
from tests.harness import ProfileLog, WorkerProcess, expected_counts, wait_until, worker_samples

pytestmark = pytest.mark.kafka
T0 = 1_767_225_600_000


def _browse_lags(settings: Settings) -> dict[str, float]:
    return {
        sample.labels["partition"]: sample.value
        for sample in worker_samples(settings)
        if sample.name == "profilestream_consumer_lag_messages" and sample.labels["topic"].endswith("events.browse")
    }


def test_the_lag_reaches_zero_after_a_transactional_producer_commits(
    make_settings: Callable[..., Settings], start_worker: Callable[..., WorkerProcess]
) -> None:
    settings = make_settings(metrics_port=free_port())
    log = ProfileLog(settings)
    worker = start_worker(settings)
    events: list[Event] = [
        BrowseEvent(event_id=f"e{n}", user_id=f"user-{n}", ts_ms=T0 + n, item_id="i1") for n in range(12)
    ]
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, transactional_id=f"t-{uuid.uuid4().hex}")
    try:
        producer.init_transactions()
        producer.begin_transaction()
        for event in events:
            producer.send(settings.topic("events.browse"), key=event.user_id.encode(), value=encode_event(event))
        producer.commit_transaction()
    finally:
        producer.close()
    log.wait_caught_up(expected_counts(events), 90, "every event's profile", workers=(worker,))
    # Every browse partition that got events ends with a commit marker.
    wait_until(lambda: len(_browse_lags(settings)) == settings.partitions and not any(_browse_lags(settings).values()),
               60, "every browse partition's lag to read 0", workers=(worker,))  # fmt: skip
