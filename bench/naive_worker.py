"""Bench-only worker entry point: profilestream's worker with the naive processor injected.

``python -m bench.naive_worker`` reads the same ``PROFILESTREAM_*`` settings as ``profilestream worker`` and
starts it through :func:`streams.worker.main.run_worker`; the only difference is the processor it is given.
"""

from __future__ import annotations

import logging
import sys

from bench.naive import NaiveProcessor
from state.record_cache import RecordCache
from state.spec import StateSpec
from streams.settings import Settings, load_settings
from streams.worker.encoder_runtime import EncoderRuntime
from streams.worker.main import run_worker
from streams.worker.metrics import WorkerMetrics

log = logging.getLogger(__name__)


def run_naive_worker(settings: Settings) -> int:
    """Run the naive worker until SIGINT/SIGTERM; returns the process exit code."""
    processors: list[NaiveProcessor] = []

    def naive(encoder: EncoderRuntime, spec: StateSpec, metrics: WorkerMetrics, cache: RecordCache) -> NaiveProcessor:
        # The same record cache as the shipped worker: only the encoding differs.
        processors.append(NaiveProcessor(encoder, spec, metrics, cache=cache))
        return processors[-1]

    try:
        return run_worker(settings, processor_factory=naive)
    finally:
        for processor in processors:
            log.warning(
                "naive encoder: %d windows, %d events re-encoded",
                processor.reencoder.windows_encoded,
                processor.reencoder.events_encoded,
            )


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    sys.exit(run_naive_worker(load_settings()))
