"""Process-level start-up of a worker: the garbage-collector tuning (in a child process, not to change pytest's)."""

from __future__ import annotations

import subprocess
import sys

from streams.worker_main import GC_THRESHOLDS


def test_the_collector_is_tuned_and_start_up_objects_are_frozen() -> None:
    code = (
        "import gc; from streams.worker_main import tune_garbage_collector; "
        "before = gc.get_freeze_count(); tune_garbage_collector(); "
        "print(*gc.get_threshold(), before, gc.get_freeze_count())"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    *thresholds, frozen_before, frozen_after = (int(x) for x in done.stdout.split())
    assert tuple(thresholds) == GC_THRESHOLDS
    assert frozen_before == 0 and frozen_after > 10_000
