"""What the suite runs, with the runs themselves replaced (they need a broker and take minutes)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

import bench.suite as suite
from bench.suite import QUICK


def test_the_slow_peer_runs_only_its_reference_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[tuple[str, int]] = []

    def fake_drain(env: Any, dataset: Any, variant: str, run: int, **_: Any) -> tuple[Any, None]:
        ran.append((variant, run))
        return type("Drained", (), {"events_per_s": 1.0})(), None

    monkeypatch.setattr(suite, "prepare_dataset", lambda *_args: object())
    monkeypatch.setattr(suite, "run_drain", fake_drain)
    config = replace(QUICK, runs=3, reference_runs=1)

    suite.run_suite(object(), config, {"side-by-side"}, lambda _message: None)  # type: ignore[arg-type]

    assert [run for variant, run in ran if variant == "quix"] == [0]
    assert [run for variant, run in ran if variant == "naive"] == [0, 1, 2]
    assert [run for variant, run in ran if variant == "profilestream"] == [0, 1, 2]
