"""Percentiles, medians and the drain rate."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.stats import (
    LatencySummary,
    drain_rate,
    folded_by,
    median,
    median_summary,
    percentile,
    rate_since,
    ratio,
)


def test_nearest_rank_percentiles_are_observed_values() -> None:
    values = list(range(1, 101))  # 1..100
    assert percentile(values, 50) == 50
    assert percentile(values, 95) == 95
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile([10.0, 20.0], 50) == 10.0
    assert percentile([7.0], 99) == 7.0


def test_percentile_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 0)
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_latency_summary_sorts_its_input() -> None:
    summary = LatencySummary.of(np.array([5.0, 1.0, 4.0, 2.0, 3.0]))
    assert (summary.count, summary.p50_ms, summary.p99_ms, summary.max_ms) == (5, 3.0, 5.0, 5.0)


def test_medians_of_runs() -> None:
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([1.0, 2.0, 3.0, 10.0]) == 2.5
    runs = [LatencySummary(10, 1, 2, 3, 4), LatencySummary(30, 5, 6, 7, 8), LatencySummary(20, 9, 9, 9, 9)]
    assert median_summary(runs) == LatencySummary(20, 5, 6, 7, 8)


def test_ratio_of_zero_baseline_is_nan() -> None:
    assert ratio(4.0, 2.0) == 2.0
    assert math.isnan(ratio(1.0, 0.0))


def test_drain_rate_counts_from_the_first_batch_on() -> None:
    # Three batches of 100 events, 1 s apart; the first batch's events were folded before its profiles existed.
    updated = [1000, 1000, 2000, 2000, 3000]
    totals = [50, 100, 150, 200, 300]
    rate, events, seconds = drain_rate(updated, totals, from_total=1)
    assert (events, seconds) == (200, 2.0)
    assert rate == 100.0


def test_drain_rate_from_a_later_point() -> None:
    updated = [1000, 2000, 3000, 4000]
    totals = [100, 200, 300, 400]
    assert drain_rate(updated, totals, from_total=200) == (100.0, 200, 2.0)


def test_drain_rate_needs_the_starting_point() -> None:
    with pytest.raises(ValueError, match="never folded"):
        drain_rate([1000], [10], from_total=11)


def test_a_drain_timed_from_its_start_counts_every_event() -> None:
    assert rate_since(1_000.0, 11_000, 50_000) == (5_000.0, 50_000, 10.0)
    assert rate_since(None, 11_000, 50_000) is None  # no start line: the caller keeps the other clock
    assert rate_since(11_000.0, 11_000, 50_000) is None


def test_the_events_folded_by_a_moment_are_those_of_the_profiles_made_until_then() -> None:
    updated = [1_000, 2_000, 2_000, 3_000]
    totals = [10, 25, 30, 40]
    assert folded_by(500.0, updated, totals) == 0
    assert folded_by(2_000.0, updated, totals) == 30  # profiles of one unit share updated_at
    assert folded_by(2_999.0, updated, totals) == 30
    assert folded_by(9_000.0, updated, totals) == 40
