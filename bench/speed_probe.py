"""How fast the machine runs the worker's own work right now: a fixed in-memory fold, timed before each section.

The suite's machines are shared and their speed drifts: on 2026-11-30 an in-memory fold of the drain's backlog
took 13 to 15 s before one `make bench` and 18 to 21 s right after it, and that run's freshness section had
p99 two to three times that of a run of the same worker a few hours before at the 10 and 25 % loads. A tight
pure-Python loop did not show such a drift (it stays in the core's caches); the worker's own work does, so the
probe is that work: the worker's processor folding a fixed slice of generated events into an in-memory store (no
Kafka, one torch thread). Each reading is shown beside the first one's, so a section that ran on a slower
machine shows it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

PROBE_USERS, PROBE_EVENTS = 500, 5_000
"""The probe's events (a fixed seed): about 0.4 s of folding on the suite's machines."""


def speed_probe() -> float:
    """Seconds the probe's fold takes now (the faster of two rounds: a momentary blip is not a slower machine,
    a slower round every time is). Imports torch and the worker on first use."""
    import torch
    from prometheus_client import CollectorRegistry
    from threadpoolctl import threadpool_limits

    from bench.fold_cost import DictStore, inbound_messages, untrained_runtime
    from state.spec import StateSpec
    from streams.worker.metrics import WorkerMetrics
    from streams.worker.processor import BatchOutput, BatchProcessor

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the suite's workers run, numpy's BLAS too (below)
    try:
        with threadpool_limits(limits=1, user_api="blas"):
            messages = inbound_messages(PROBE_USERS, PROBE_EVENTS, 4_242, "probe")
            runtime = untrained_runtime()
            best = float("inf")
            for _ in range(2):
                metrics = WorkerMetrics(CollectorRegistry(), process_metrics=False)
                processor = BatchProcessor(runtime, StateSpec(), metrics)
                processor.partition_for_key = lambda key: 0
                state = DictStore()
                started = time.perf_counter()
                output = BatchOutput()
                processor.fold(processor.decode(messages, output), state, output, consumed=len(messages))
                best = min(best, time.perf_counter() - started)
            return best
    finally:
        torch.set_num_threads(threads)


def speed_line(readings: Sequence[tuple[str, float]]) -> str:
    """The probe's readings as one line: each section's time as a multiple of the first reading's."""
    if not readings:
        return "not measured"
    first = readings[0][1]
    shown = ", ".join(f"{name} {seconds / first:.2f}x" for name, seconds in readings)
    return f"{shown} (the first took {first * 1000:.0f} ms; above 1.00x the machine ran slower than at the start)"
