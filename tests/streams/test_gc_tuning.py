"""The worker's garbage-collection policy, in child processes (not to change pytest's own collector)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import Any

from streams.worker.gc_tuning import GC_THRESHOLDS


def _run(code: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=True, timeout=120
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_the_collector_is_tuned_and_start_up_objects_are_frozen() -> None:
    out = _run(
        """
        import gc, json
        from streams.worker.gc_tuning import is_tuned, tune_garbage_collector
        before, tuned_before, tracked = gc.get_freeze_count(), is_tuned(), len(gc.get_objects())
        tune_garbage_collector()
        print(json.dumps({"thresholds": gc.get_threshold(), "before": before, "after": gc.get_freeze_count(),
                          "tracked": tracked, "tuned_before": tuned_before, "tuned": is_tuned()}))
        """
    )
    assert tuple(out["thresholds"]) == GC_THRESHOLDS
    assert out["before"] == 0 and out["after"] >= out["tracked"] > 1000  # every start-up object is frozen
    assert not out["tuned_before"] and out["tuned"]


def test_young_survivors_are_frozen_the_sweep_collects_frozen_cycles_and_restore_undoes_it() -> None:
    out = _run(
        """
        import gc, json
        from streams.worker.gc_tuning import (
            is_tuned, restore_garbage_collector, sweep_frozen_heap, tune_garbage_collector,
        )
        tune_garbage_collector()

        class Node:
            def __init__(self):
                self.other = None

        nodes = [Node() for _ in range(1000)]
        for a, b in zip(nodes[::2], nodes[1::2]):
            a.other, b.other = b, a  # 500 two-node cycles
        frozen_before = gc.get_freeze_count()
        gc.collect(0)
        frozen_after_young = gc.get_freeze_count()
        del nodes, a, b
        # The cycles are garbage now, but frozen: no collection of the generations finds them.
        young = gc.collect(0) + gc.collect(1) + gc.collect(2)
        collected, seconds = sweep_frozen_heap()
        left_unfrozen = len(gc.get_objects())
        restore_garbage_collector()
        print(json.dumps({"frozen_gain": frozen_after_young - frozen_before, "young": young,
                          "swept": collected, "left_unfrozen": left_unfrozen, "seconds": seconds,
                          "frozen_after_restore": gc.get_freeze_count(), "tuned_after_restore": is_tuned()}))
        """
    )
    assert out["frozen_gain"] >= 1000
    assert out["young"] < 1000
    assert out["swept"] >= 1000
    assert out["left_unfrozen"] < 1000  # the sweep froze what survived it
    assert out["frozen_after_restore"] == 0 and not out["tuned_after_restore"]
