"""The report's profile section: the drain's and the live-traffic profile side by side, and what each shows."""

from __future__ import annotations

from datetime import UTC, datetime

from bench.machine import Machine
from bench.pyspy import PARTS, ProfileSummary, Share
from bench.report import render
from bench.runs import DrainResult
from bench.suite import SuiteResults
from bench.suite_config import QUICK

MACHINE = Machine("cpu", 2, 24.0, "Linux", "3.11", {}, (0.1, 0.2, 0.3), commit="abc1234")


def _summary(shares: list[float], top: str) -> ProfileSummary:
    parts = tuple(Share(label, share) for (label, _), share in zip(PARTS, shares, strict=True))
    return ProfileSummary(1_000, (Share(top, 0.1),), (), parts)


def _drain() -> DrainResult:
    return DrainResult("profilestream", 10_000, 2.0, 5_000.0, 0.2, 0.15, 2_000.0, 0.0, 1 << 30, 4_000, 1_400.0, 700.0,
                       750.0, 0)  # fmt: skip


def _render(results: SuiteResults) -> str:
    return render(results, MACHINE, "python -m bench --quick", datetime(2026, 11, 30, tzinfo=UTC))


def test_the_live_profile_stands_beside_the_drain_profile() -> None:
    drain = [0.9, 0.23, 0.0, 0.13, 0.10, 0.0, 0.08, 0.03, 0.01, 0.05, 0.04]
    live = [0.6, 0.05, 0.0, 0.20, 0.12, 0.07, 0.09, 0.04, 0.01, 0.06, 0.08]
    results = SuiteResults(QUICK, drains=[_drain()], max_rate_per_s=5_000.0)
    results.profile = _summary(drain, "GRU.forward (torch/nn/modules/rnn.py)")
    results.live_profile = _summary(live, "encode_state (state/codec.py)")

    report = _render(results)

    assert "| part | draining the backlog | live traffic at 50.0% |" in report
    assert "| state record encode (encode_state) | 13.0% | 20.0% |" in report
    assert "2,500 events/s over 1,000 users" in report
    assert "`GRU.forward (torch/nn/modules/rnn.py)`" in report.split("live traffic:")[0]
    assert "`encode_state (state/codec.py)`" in report.split("Top functions by own time, live traffic:")[1]
    throughput_line = next(line for line in report.splitlines() if line.startswith("What the profile shows"))
    assert throughput_line.startswith("What the profile shows in the way of the throughput: encoder: batched GRU")
    lines = report.splitlines()
    freshness_line = next(line for line in lines if line.startswith("What the profile under live traffic"))
    # The live profile's four largest parts after the first, largest first.
    assert freshness_line.index("state record encode") < freshness_line.index("fold into window")
    assert "encoder: batched GRU" not in freshness_line


def test_without_a_live_profile_the_table_has_one_column() -> None:
    results = SuiteResults(QUICK, drains=[_drain()], max_rate_per_s=5_000.0)
    results.profile = _summary([0.9, 0.23, 0.0, 0.13, 0.10, 0.0, 0.08, 0.03, 0.01, 0.05, 0.04], "f")

    report = _render(results)

    assert "| part | share |" in report and "live traffic" not in report
    assert not any(line.startswith("What the profile under live traffic") for line in report.splitlines())
