"""The worker's garbage-collection policy: young collections only, and a full sweep now and then.

A worker keeps a large long-lived heap (the model, Faust, the record cache: tens of objects per cached user)
and allocates many short-lived objects per event, nearly all of which reference counting frees at once. With
CPython's generational collector the older generations fill with the cache's records, and collecting them
stops the event loop for as long as walking them takes (70 to 170 ms at 10,000 cached users here), which set
the p99 freshness of the benchmark. So every collection's survivors are frozen: they leave the collector's
generations for the permanent one, and the next collection only walks what was allocated since. Frozen objects
are still freed by reference counting; only reference cycles among them that become garbage wait for the
full sweep, which unfreezes, collects everything and freezes again every ``gc_sweep_interval_s``. (Sweeps every
15 s during a paced benchmark run collected 60, 0 and 0 objects: almost nothing waits for them.)
"""

from __future__ import annotations

import gc
import time
from typing import Any

GC_THRESHOLDS = (10_000, 20, 100)
"""Collector generation thresholds of a worker (Python's defaults: 700, 10, 10)."""


def _freeze_survivors(phase: str, info: dict[str, Any]) -> None:
    # Everything that outlived the collection just finished is reachable now: keep it out of the next ones.
    if phase == "stop":
        gc.freeze()


def tune_garbage_collector() -> None:
    """Freeze the start-up heap, raise the thresholds and freeze the survivors of every later collection."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    if _freeze_survivors not in gc.callbacks:
        gc.callbacks.append(_freeze_survivors)


def restore_garbage_collector() -> None:
    """Undo the policy and collect everything, before the interpreter shuts down.

    Shutdown relies on the collector: objects in reference cycles (some of which stop threads when they are
    finalised) must be collected, not left frozen, or the process never exits.
    """
    if _freeze_survivors in gc.callbacks:
        gc.callbacks.remove(_freeze_survivors)
    gc.unfreeze()
    gc.collect()


def is_tuned() -> bool:
    """Whether this process runs the policy (a sweep anywhere else would freeze a heap nobody sweeps)."""
    return _freeze_survivors in gc.callbacks


def sweep_frozen_heap() -> tuple[int, float]:
    """Collect the cycles that became garbage among frozen objects; returns (objects collected, seconds).

    The pause is as long as a full collection of the whole heap; the sweep interval makes it rare.
    """
    started = time.perf_counter()
    gc.unfreeze()
    collected = gc.collect()  # the callback freezes what survived
    return collected, time.perf_counter() - started
