"""Small, pure statistics: percentiles, medians of runs, ratios and the drain rate."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


def percentile(sorted_values: Sequence[float] | npt.NDArray[np.float64], p: float) -> float:
    """The nearest-rank ``p``-th percentile (0 < p <= 100) of already sorted values: an observed value, never an
    interpolation, so p100 is the maximum and p50 of two values is the lower one."""
    n = len(sorted_values)
    if n == 0:
        raise ValueError("no values")
    if not 0 < p <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {p}")
    rank = max(1, math.ceil(p / 100 * n))
    return float(sorted_values[rank - 1])


@dataclass(frozen=True)
class LatencySummary:
    """Percentiles of a set of latencies, in milliseconds."""

    count: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def of(cls, values_ms: Sequence[float] | npt.NDArray[np.float64]) -> LatencySummary:
        """Summarise latencies (at least one)."""
        ordered = np.sort(np.asarray(values_ms, dtype=np.float64))
        return cls(
            count=int(ordered.shape[0]),
            p50_ms=percentile(ordered, 50),
            p95_ms=percentile(ordered, 95),
            p99_ms=percentile(ordered, 99),
            max_ms=percentile(ordered, 100),
        )


def median(values: Sequence[float]) -> float:
    """Median of run figures (the mean of the middle two for an even count)."""
    if not values:
        raise ValueError("no values")
    return float(statistics.median(values))


def median_summary(summaries: Sequence[LatencySummary]) -> LatencySummary:
    """Field-by-field median of several runs' latency summaries."""
    return LatencySummary(
        count=int(median([s.count for s in summaries])),
        p50_ms=median([s.p50_ms for s in summaries]),
        p95_ms=median([s.p95_ms for s in summaries]),
        p99_ms=median([s.p99_ms for s in summaries]),
        max_ms=median([s.max_ms for s in summaries]),
    )


def ratio(value: float, baseline: float) -> float:
    """``value / baseline``; NaN when the baseline is zero."""
    return value / baseline if baseline else math.nan


def drain_rate(
    updated_ms: Sequence[int] | npt.NDArray[np.int64],
    folded_total: Sequence[int] | npt.NDArray[np.int64],
    from_total: int,
) -> tuple[float, int, float]:
    """Events per second of a drain, measured from the first profile at which ``from_total`` events were folded.

    ``updated_ms[i]`` is when profile *i* (in read order) was made and ``folded_total[i]`` how many events the
    worker had folded once it was made. Returns (events per second, events counted, seconds).
    """
    times = np.asarray(updated_ms, dtype=np.int64)
    totals = np.asarray(folded_total, dtype=np.int64)
    if times.shape[0] == 0:
        raise ValueError("no profiles")
    reached = np.nonzero(totals >= from_total)[0]
    if reached.shape[0] == 0:
        raise ValueError(f"the drain never folded {from_total} events")
    start = int(reached[0])
    # Profiles of one batch share updated_at; the first batch's events were folded before its profiles existed.
    start_ms = int(times[start])
    start_total = folded_by(start_ms, times, totals)
    seconds = (int(times.max()) - start_ms) / 1000
    events = int(totals.max()) - start_total
    return (events / seconds if seconds > 0 else math.nan), events, seconds


def rate_since(start_ms: float | None, last_profile_ms: int, folded_total: int) -> tuple[float, int, float] | None:
    """(events per second, events, seconds) of a drain timed from ``start_ms`` (e.g. the worker's first fetch) to
    its last profile, every folded event counted; None without a start, or with one not before the last profile."""
    if start_ms is None or last_profile_ms <= start_ms:
        return None
    seconds = (last_profile_ms - start_ms) / 1000
    return folded_total / seconds, folded_total, seconds


def folded_by(start_ms: float, updated_ms: Sequence[int] | npt.NDArray[np.int64],
              folded_total: Sequence[int] | npt.NDArray[np.int64]) -> int:  # fmt: skip
    """How many events had been folded by ``start_ms``: the running total of the last profile made at or before
    it (0 if none was). ``updated_ms``/``folded_total`` as for :func:`drain_rate`."""
    times = np.asarray(updated_ms, dtype=np.int64)
    totals = np.asarray(folded_total, dtype=np.int64)
    before = totals[times <= start_ms]
    return int(before.max()) if before.shape[0] else 0
