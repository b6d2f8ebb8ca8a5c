"""The live-traffic maximum's search between the fixed loads (bench.live_search: no Kafka client needed)."""

from __future__ import annotations

import math

from bench.live_search import Trial, median_maximum, next_rate, refinement_rate, run_maximum


def trial(offered: float, p99_ms: float, achieved: float | None = None) -> Trial:
    return Trial(offered, offered if achieved is None else achieved, p99_ms)


def test_the_next_load_is_halfway_between_the_best_that_met_the_target_and_the_first_above_that_missed() -> None:
    trials = [trial(100, 40), trial(200, 60), trial(400, 2_000), trial(800, 9_000)]

    assert next_rate(trials) == 300
    assert next_rate([*trials, trial(300, 90)]) == 350
    assert next_rate([*trials, trial(300, 150)]) == 250


def test_a_miss_below_the_best_load_that_met_the_target_does_not_stop_the_search_above_it() -> None:
    # Low loads are noisy (a fresh worker's first phase): the search brackets above the highest load that met it.
    assert next_rate([trial(50, 120), trial(100, 40), trial(200, 500)]) == 150


def test_no_bracket_no_next_load() -> None:
    assert next_rate([trial(100, 150), trial(200, 300)]) is None  # nothing met the target
    assert next_rate([trial(100, 40), trial(200, 60)]) is None  # nothing above the best missed it
    assert next_rate([]) is None


def test_a_load_without_a_measured_p99_counts_as_missed() -> None:
    trials = [trial(100, 40), trial(200, math.nan)]

    assert not trials[1].met(100.0)
    assert next_rate(trials) == 150


def test_the_refinement_stops_after_its_steps() -> None:
    fixed = [trial(100, 40), trial(400, 2_000)]

    assert refinement_rate(fixed, fixed=2, steps=2) == 250
    assert refinement_rate([*fixed, trial(250, 80)], fixed=2, steps=2) == 325
    assert refinement_rate([*fixed, trial(250, 80), trial(325, 120)], fixed=2, steps=2) is None
    assert refinement_rate(fixed, fixed=2, steps=0) is None


def test_a_runs_maximum_is_the_highest_achieved_rate_that_met_the_target() -> None:
    trials = [trial(100, 40, achieved=98), trial(250, 80, achieved=246), trial(325, 120), trial(400, 2_000)]

    assert run_maximum(trials) == 246
    assert run_maximum([trial(100, 150)]) is None


def test_a_run_without_a_maximum_counts_as_zero_in_the_median() -> None:
    assert median_maximum([556.0, 243.0, None]) == 243.0  # not 399.5, the median of the two that found one
    assert median_maximum([885.0, 1_264.0, 695.0]) == 885.0
    assert median_maximum([300.0, None]) == 150.0
    assert median_maximum([None, None]) is None
