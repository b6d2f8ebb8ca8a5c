"""The freshness table's settled p99: the median over runs, and none when no run had settled events."""

from __future__ import annotations

from bench.freshness import settled_p99
from bench.stats import LatencySummary


def _settled(p99_ms: float) -> LatencySummary:
    return LatencySummary(count=80, p50_ms=10, p95_ms=p99_ms, p99_ms=p99_ms, max_ms=p99_ms)


def test_the_settled_p99_is_the_median_of_the_runs_that_had_settled_events() -> None:
    assert settled_p99([_settled(180), _settled(240), _settled(200), None]) == 200


def test_none_when_no_run_had_events_after_the_settling_time() -> None:
    assert settled_p99([None, None]) is None
    assert settled_p99([]) is None
