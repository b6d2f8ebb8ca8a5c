"""Where each input partition's delivery starts, against the real broker: the committed offsets faust seeks back
to after a rebalance, or the consumer's position where nothing was ever committed. The progress series starts
there, so a partition stuck from the moment it was assigned still shows up as stalled."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bench.procs import free_port
from streams.contract.events import EVENT_TYPES
from streams.contract.topics import input_topic
from streams.settings import Settings
from tests.harness import (
    ProfileLog,
    WorkerProcess,
    demo_events,
    expected_counts,
    send_events,
    wait_until,
    worker_samples,
)

pytestmark = pytest.mark.kafka


def _consumed_offsets(settings: Settings) -> dict[tuple[str, int], float]:
    """``profilestream_consumed_offset`` of the worker's /metrics per (topic, partition)."""
    return {
        (sample.labels["topic"], int(sample.labels["partition"])): sample.value
        for sample in worker_samples(settings)
        if sample.name == "profilestream_consumed_offset"
    }


def test_the_progress_series_starts_where_delivery_starts(
    make_settings: Callable[..., Settings], start_worker: Callable[..., WorkerProcess]
) -> None:
    settings = make_settings(metrics_port=free_port())
    inputs = [(settings.topic(input_topic(kind)), p) for kind in EVENT_TYPES for p in range(settings.partitions)]

    # A new group, nothing ever committed: every input partition's series starts at the position (-1: empty).
    worker = start_worker(settings, name="first")
    wait_until(
        lambda: sorted(_consumed_offsets(settings)) == sorted(inputs),
        90,
        "a progress series for every input partition",
        workers=(worker,),
        detail=lambda: _consumed_offsets(settings),
    )
    assert set(_consumed_offsets(settings).values()) == {-1.0}

    events = demo_events(users=30, count=600, seed=83)
    log = ProfileLog(settings)
    send_events(settings, events)
    log.wait_caught_up(expected_counts(events), 90, "every user's profile", workers=(worker,))
    wait_until(
        lambda: sum(v + 1 for v in _consumed_offsets(settings).values()) == len(events),
        60,
        "the progress series to count every event",
        workers=(worker,),
        detail=lambda: _consumed_offsets(settings),
    )
    processed = _consumed_offsets(settings)
    assert worker.stop() == 0

    # Restarted on the committed offsets: each series starts at the last offset processed before the stop.
    worker = start_worker(settings, name="second")
    wait_until(
        lambda: _consumed_offsets(settings) == processed,
        90,
        "the progress series to start at the committed offsets",
        workers=(worker,),
        detail=lambda: _consumed_offsets(settings),
    )
