"""The live-traffic maximum between the suite's fixed loads, found by bisecting the offered rate (no Kafka here).

The freshness section offers fixed fractions of the drain maximum (2.5 % to 75 %), a factor of two apart where
the worker's p99 crosses the target: on those alone the live-traffic maximum can be reported up to half of what
the worker sustains, and a sizing planned from it buys up to twice the processes. After the fixed loads, each run
offers a few loads halfway between the highest load that met the target and the lowest load above it that did
not, in the same worker, and the maximum is the highest load that met it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

P99_TARGET_MS = 100.0
"""Issue 13's freshness target: p99 from event time to a consumer's read of the covering profile."""


@dataclass(frozen=True)
class Trial:
    """One paced load as the search sees it."""

    offered_per_s: float
    achieved_per_s: float
    p99_ms: float

    def met(self, target_ms: float) -> bool:
        """Whether its p99 stayed under ``target_ms`` (a load without a measured p99 did not)."""
        return not math.isnan(self.p99_ms) and self.p99_ms < target_ms


def next_rate(trials: Sequence[Trial], target_ms: float = P99_TARGET_MS) -> float | None:
    """The offered rate halfway between the highest load that met the target and the lowest load above it that
    did not; None when the trials do not bracket the target (none met it, or none above the best missed it)."""
    met = [t.offered_per_s for t in trials if t.met(target_ms)]
    if not met:
        return None
    low = max(met)
    missed = [t.offered_per_s for t in trials if not t.met(target_ms) and t.offered_per_s > low]
    if not missed:
        return None
    return (low + min(missed)) / 2


def refinement_rate(trials: Sequence[Trial], fixed: int, steps: int, target_ms: float = P99_TARGET_MS) -> float | None:
    """The next load to offer after ``fixed`` fixed loads and whatever refinement followed them (``trials`` holds
    all, fixed first), or None once ``steps`` refinement loads ran or the trials do not bracket the target."""
    if len(trials) - fixed >= steps:
        return None
    return next_rate(trials, target_ms)


def run_maximum(trials: Sequence[Trial], target_ms: float = P99_TARGET_MS) -> float | None:
    """The highest achieved rate among the loads of one run that met the target (None: none did)."""
    rates = [t.achieved_per_s for t in trials if t.met(target_ms)]
    return max(rates) if rates else None


def median_maximum(per_run: Sequence[float | None]) -> float | None:
    """The median over runs of each run's maximum, a run in which no load met the target counting as 0 (left
    out, it would raise the median); None when no run had one."""
    if all(rate is None for rate in per_run):
        return None
    values = sorted(0.0 if rate is None else rate for rate in per_run)
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2
