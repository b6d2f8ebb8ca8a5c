"""What the suite runs in which run (bench.suite_config: no Kafka client needed)."""

from __future__ import annotations

from dataclasses import replace

from bench.suite_config import DEFAULT, QUICK, side_by_side_runs


def test_the_slow_peer_runs_only_its_reference_runs() -> None:
    runs = side_by_side_runs(replace(DEFAULT, runs=3, reference_runs=1))

    assert [run for run, variant in runs if variant == "quix"] == [0]
    assert [run for run, variant in runs if variant == "naive"] == [0, 1, 2]
    assert [run for run, variant in runs if variant == "profilestream"] == [0, 1, 2]
    # Run by run, as the suite drains them: the runs of one round stay together.
    assert [run for run, _ in runs] == sorted(run for run, _ in runs)


def test_the_quick_suite_has_no_slow_peer() -> None:
    assert [variant for _, variant in side_by_side_runs(QUICK)] == ["profilestream", "naive"]
