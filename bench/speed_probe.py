"""How fast the machine runs right now: a fixed single-threaded Python workload, timed before each section.

The suite's machines are shared: in one `make bench` on 2026-11-30 an in-memory fold of the drain's backlog took
14 s before the suite and 18 to 21 s right after it, and the freshness section's p99 at light loads doubled
against a run of the same worker a few hours earlier. A rate measured while the machine ran slower is not a
property of the code; the report shows each section's probe beside the first one's, so a reader can tell.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

PROBE_ITERATIONS = 1_000_000
"""About 0.1 s of work on the suite's machines; the probe takes the fastest of three such rounds."""


def speed_probe(iterations: int = PROBE_ITERATIONS) -> float:
    """Seconds the fixed workload takes now (the fastest of three rounds: a momentary blip is not a slower
    machine, a slower round every time is)."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        table: dict[int, int] = {}
        total = 0
        for i in range(iterations):
            table[i & 1023] = total
            total = (total * 31 + i) & 0xFFFF_FFFF
        best = min(best, time.perf_counter() - started)
    return best


def speed_line(readings: Sequence[tuple[str, float]]) -> str:
    """The probe's readings as one line: each section's time as a multiple of the first reading's."""
    if not readings:
        return "not measured"
    first = readings[0][1]
    shown = ", ".join(f"{name} {seconds / first:.2f}x" for name, seconds in readings)
    return f"{shown} (the first took {first * 1000:.0f} ms; above 1.00x the machine ran slower than at the start)"
