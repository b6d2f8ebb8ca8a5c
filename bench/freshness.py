"""Freshness: for each event, the time from its event time to the first profile that includes it being read.

A profile includes every event of its user up to its ``last_event_ts`` (the paced load stamps events with the
wall clock as it sends them, so one user's event times only grow). The latency of an event is therefore the read
time of the first profile of its user whose ``last_event_ts`` is at or after the event's time, minus that time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from bench.stats import LatencySummary, median, percentile

_TS_BITS = 42
"""Event times in ms fit 42 bits until the year 2109; user indices take the bits above."""


def _keys(user: npt.NDArray[np.int64], ts_ms: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    return (user.astype(np.int64) << _TS_BITS) | ts_ms.astype(np.int64)


def event_latencies_ms(
    event_user: npt.ArrayLike,
    event_ts_ms: npt.ArrayLike,
    profile_user: npt.ArrayLike,
    profile_last_event_ts_ms: npt.ArrayLike,
    profile_read_ms: npt.ArrayLike,
) -> npt.NDArray[np.float64]:
    """Latency in ms of every event (NaN for an event no profile covers).

    Profiles are given in the order they were read; within a user, ``last_event_ts`` never decreases in that order.
    """
    e_user = np.asarray(event_user, dtype=np.int64)
    e_ts = np.asarray(event_ts_ms, dtype=np.int64)
    p_user = np.asarray(profile_user, dtype=np.int64)
    p_ts = np.asarray(profile_last_event_ts_ms, dtype=np.int64)
    p_read = np.asarray(profile_read_ms, dtype=np.int64)
    latencies = np.full(e_user.shape[0], np.nan, dtype=np.float64)
    if p_user.shape[0] == 0 or e_user.shape[0] == 0:
        return latencies
    # A stable sort keeps read order among a user's profiles with the same last_event_ts: the first read wins.
    order = np.argsort(_keys(p_user, p_ts), kind="stable")
    sorted_keys = _keys(p_user, p_ts)[order]
    sorted_read = p_read[order]
    sorted_user = p_user[order]
    at = np.searchsorted(sorted_keys, _keys(e_user, e_ts), side="left")
    found = at < sorted_keys.shape[0]
    found[found] &= sorted_user[at[found]] == e_user[found]
    latencies[found] = (sorted_read[at[found]] - e_ts[found]).astype(np.float64)
    return latencies


SETTLE_MS = 3_000
"""How long a paced phase runs before its events count as settled: each phase starts at once at its rate, and
the step from the previous phase's rate leaves a queue for the first second or two (measured at 3,000 and 4,500
events/s: the first two seconds' events carried nearly all of a 20 s phase's p99)."""


def settled(event_ts_ms: npt.ArrayLike, settle_ms: int = SETTLE_MS) -> npt.NDArray[np.bool_]:
    """Which events were sent at least ``settle_ms`` after the phase's first event."""
    ts = np.asarray(event_ts_ms, dtype=np.int64)
    if ts.shape[0] == 0:
        return np.zeros(0, dtype=bool)
    return np.asarray(ts >= int(ts.min()) + settle_ms)


def settled_p99(summaries: Sequence[LatencySummary | None]) -> float | None:
    """The median over runs of p99 after the settling time (None: no run had events that late)."""
    values = [s.p99_ms for s in summaries if s is not None]
    return median(values) if values else None


@dataclass(frozen=True)
class PhaseLatencies:
    """Every event of a paced phase: when it was sent and its latencies in ms (NaN: no profile covered it)."""

    sent_ms: np.ndarray
    read: np.ndarray
    """Event time to a consumer reading the first profile that includes it."""
    made: np.ndarray
    """Event time to that profile's ``updated_at``: the worker's part."""


def settled_summary(latencies: PhaseLatencies) -> LatencySummary | None:
    """Latency of the covered events sent after the settling time (None: none were)."""
    late = latencies.read[settled(latencies.sent_ms) & ~np.isnan(latencies.read)]
    return LatencySummary.of(late) if late.shape[0] else None


@dataclass(frozen=True)
class SeriesRow:
    """The events sent within one bin of the phase."""

    start_s: float
    events: int
    made_p50_ms: float
    made_p99_ms: float
    read_p99_ms: float


def latency_series(latencies: PhaseLatencies, bin_ms: int) -> list[SeriesRow]:
    """Latency percentiles of the covered events, per ``bin_ms`` of send time from the phase's first event."""
    sent = np.asarray(latencies.sent_ms, dtype=np.int64)
    if sent.shape[0] == 0:
        return []
    bins = (sent - sent.min()) // bin_ms
    rows = []
    for index in range(int(bins.max()) + 1):
        chosen = bins == index
        made = np.sort(latencies.made[chosen & ~np.isnan(latencies.made)])
        read = np.sort(latencies.read[chosen & ~np.isnan(latencies.read)])
        if made.shape[0] == 0 or read.shape[0] == 0:
            continue
        rows.append(
            SeriesRow(
                start_s=index * bin_ms / 1000,
                events=int(chosen.sum()),
                made_p50_ms=percentile(made, 50),
                made_p99_ms=percentile(made, 99),
                read_p99_ms=percentile(read, 99),
            )
        )
    return rows
