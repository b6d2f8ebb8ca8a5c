"""Bench-only worker entry point: the framework floor, profilestream's worker with everything of its own removed.

``python -m bench.floor_worker`` runs the very same Faust app (topics, batch delivery, units of work, bulk
publishing) as ``profilestream worker``, with a processor that only decodes the events and publishes, per user
and batch, a minimal profile carrying the counters the benchmark reads. No state store, no record codec, no encoder, no
aggregates: what it reaches is what Faust, Kafka and event decoding leave for the rest on this machine.
The counters live in memory, so this worker is a measurement, not a product.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator, Sequence
from typing import Any

from state.record_cache import RecordCache
from state.spec import StateSpec
from streams.settings import load_settings
from streams.worker.encoder_runtime import EncoderRuntime
from streams.worker.main import run_worker
from streams.worker.metrics import WorkerMetrics
from streams.worker.processor import BatchOutput, BatchProcessor, Decoded, StateAccess


class FloorProcessor(BatchProcessor):
    """Decodes a micro-batch and publishes each user's event count and newest event time; nothing else."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.counts: dict[str, tuple[int, int]] = {}

    def fold_in_slices(
        self, decoded: Sequence[Decoded], state: StateAccess, output: BatchOutput, consumed: int | None = None
    ) -> Iterator[None]:
        """Publish the counters of every user in the batch (decoding, and so dead letters, happened before), in
        one slice."""
        now_ms = self.clock_ms()
        by_user: dict[str, list[int]] = {}
        for item in decoded:
            by_user.setdefault(item.event.user_id, []).append(item.event.ts_ms)
        for user_id, times in by_user.items():
            count, newest = self.counts.get(user_id, (0, 0))
            count += len(times)
            newest = max(newest, *times)
            self.counts[user_id] = (count, newest)
            profile = f'{{"user_id":{json.dumps(user_id)},"updated_at":{now_ms},"last_event_ts":{newest},'
            output.profiles.append((user_id.encode(), f'{profile}"event_count":{count}}}'.encode()))
        yield from ()  # one slice: a generator that never yields


def floor_processor(
    encoder: EncoderRuntime, spec: StateSpec, metrics: WorkerMetrics, cache: RecordCache
) -> FloorProcessor:
    """The processor factory of :func:`streams.worker.main.run_worker` (the cache goes unused)."""
    return FloorProcessor(encoder, spec, metrics)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    sys.exit(run_worker(load_settings(), processor_factory=floor_processor))
