"""Coverage: the share of a version's items shown, over one to two windows, per loaded version."""

from __future__ import annotations

from streams.recommend.coverage import Coverage


def test_coverage_counts_distinct_items_over_the_current_and_previous_window() -> None:
    now = [0.0]
    coverage = Coverage(window_s=10, clock_s=lambda: now[0])
    coverage.shown("m1", 10, [0, 1, 2])
    coverage.shown("m1", 10, [2, 3])
    assert coverage.ratios(["m1", "m2"]) == {"m1": 0.4, "m2": 0.0}
    now[0] = 12  # one window on: the first window's items still count
    coverage.shown("m1", 10, [9])
    assert coverage.ratios(["m1"]) == {"m1": 0.5}
    now[0] = 21  # two windows on: only the second window's item
    assert coverage.ratios(["m1"]) == {"m1": 0.1}
    now[0] = 45  # nothing recent
    assert coverage.ratios(["m1"]) == {"m1": 0.0}


def test_an_unloaded_version_is_dropped() -> None:
    coverage = Coverage(window_s=10, clock_s=lambda: 0.0)
    coverage.shown("old", 4, [0, 1])
    assert coverage.ratios(["new"]) == {"new": 0.0}
    assert coverage.ratios(["old"]) == {"old": 0.0}
