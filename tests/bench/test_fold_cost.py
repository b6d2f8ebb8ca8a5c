"""bench.fold_cost: trees measured in turns, each tree's best round, ratios against the baseline."""

from __future__ import annotations

from pathlib import Path

import pytest

import bench.checkout
import bench.fold_cost as fold_cost
from bench.procs import REPO_ROOT


def test_rounds_alternate_and_keep_each_trees_best(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    checkout = tmp_path / "baseline"
    order: list[Path] = []
    figures = {
        REPO_ROOT: iter([{"one": 400.0, "live": 90.0, "drain": 50.0}, {"one": 500.0, "live": 80.0, "drain": 55.0}]),
        checkout: iter([{"one": 900.0, "live": 100.0, "drain": 60.0}, {"one": 800.0, "live": 110.0, "drain": 50.0}]),
    }

    def run_in(tree: Path) -> dict[str, float]:
        order.append(tree)
        return next(figures[tree])

    removed: list[Path] = []
    monkeypatch.setattr(fold_cost, "_run_in", run_in)
    monkeypatch.setattr(bench.checkout, "checkout_of", lambda revision, workdir: checkout)
    monkeypatch.setattr(bench.checkout, "remove_checkout", removed.append)
    table = fold_cost.compare(2, "abc1234", tmp_path)
    assert order == [REPO_ROOT, checkout, checkout, REPO_ROOT]
    assert removed == [checkout]
    rows = table.splitlines()
    assert rows[2] == "| this tree | 400.0 | 80.0 | 50.0 | 0.500 | 0.800 | 1.000 |"
    assert rows[3] == "| `abc1234` | 800.0 | 100.0 | 50.0 | 1.000 | 1.000 | 1.000 |"


def test_without_a_baseline_only_this_tree(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(fold_cost, "_run_in", lambda tree: {"one": 700.0, "live": 95.0, "drain": 51.0})
    table = fold_cost.compare(1, None, tmp_path)
    assert table.splitlines()[2] == "| this tree | 700.0 | 95.0 | 51.0 |"
