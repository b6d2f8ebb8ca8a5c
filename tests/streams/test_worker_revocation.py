"""What a worker forgets of partitions a rebalance takes away (no broker: the callback alone)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from faust.types import TP
from prometheus_client import CollectorRegistry

from bench.fold_cost import untrained_runtime
from state.spec import StateSpec
from streams.settings import load_settings
from streams.worker.app import ProfileWorker
from streams.worker.metrics import WorkerMetrics
from streams.worker.processor import BatchProcessor


def test_a_revoked_partition_forgets_the_offsets_processed_in_it(tmp_path: Path) -> None:
    settings = load_settings(state_dir=tmp_path / "state", topic_prefix="t.", metrics_port=0, partitions=4)
    metrics = WorkerMetrics(CollectorRegistry(), process_metrics=False)
    spec = StateSpec()
    runtime = untrained_runtime()
    worker = ProfileWorker(settings, runtime, metrics, spec, BatchProcessor(runtime, spec, metrics))
    browse, search = settings.topic("events.browse"), settings.topic("events.search")
    worker._processed = {(browse, 1): 1000, (search, 1): 40, (browse, 2): 7}
    # When partition 1 comes back, possibly after another worker moved it on, these would be reported as this
    # worker's position (lag, consumed offset) until its next event.
    asyncio.run(worker._on_revoked(None, {TP(browse, 1), TP(search, 1)}))
    assert worker._processed == {(browse, 2): 7}
