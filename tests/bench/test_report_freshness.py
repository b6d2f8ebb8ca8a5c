"""The freshness table's settled p99: the median over runs, and a dash when no run had settled events."""

from __future__ import annotations

from bench.report import _settled_p99
from bench.runs import PacedPhase, PhaseResult
from bench.stats import LatencySummary

PHASE = PacedPhase("50%", 4_500, 12)


def _run(p99_ms: float, settled_p99_ms: float | None) -> PhaseResult:
    whole = LatencySummary(count=100, p50_ms=10, p95_ms=p99_ms, p99_ms=p99_ms, max_ms=p99_ms)
    settled = (
        None
        if settled_p99_ms is None
        else LatencySummary(count=80, p50_ms=10, p95_ms=settled_p99_ms, p99_ms=settled_p99_ms, max_ms=settled_p99_ms)
    )
    return PhaseResult(PHASE, 100, 4_500, whole, whole, 0, settled)


def test_the_settled_p99_is_the_median_of_the_runs_that_had_settled_events() -> None:
    runs = [_run(2_800, 180), _run(2_500, 240), _run(2_900, 200), _run(100, None)]
    assert _settled_p99(runs) == "200"


def test_a_dash_when_no_run_had_events_after_the_settling_time() -> None:
    assert _settled_p99([_run(50, None)]) == "-"
