"""Bucket arithmetic and the sparse bucket series."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from state.layout import MAX_STORED_AMOUNT
from state.spec import WindowSpec
from state.windows import (
    BucketSeries,
    SeriesKind,
    bucket_index,
    in_window,
    is_too_late,
    window_first_bucket,
    window_start_ms,
)

HOUR = WindowSpec("1h", 3_600_000, 60_000)


def test_window_covers_whole_buckets_up_to_the_as_of_bucket() -> None:
    as_of = 10 * 3_600_000 + 30_000  # half a minute into a minute bucket
    assert window_start_ms(as_of, HOUR) == 9 * 3_600_000 + 60_000
    assert window_first_bucket(as_of, HOUR) == bucket_index(as_of, 60_000) - 59
    assert in_window(9 * 3_600_000 + 60_000, as_of, HOUR)
    assert not in_window(9 * 3_600_000 + 59_999, as_of, HOUR)
    assert in_window(as_of, as_of, HOUR)
    assert not in_window(as_of + 1, as_of, HOUR)


def test_negative_times_use_floor_buckets() -> None:
    assert bucket_index(-1, 60_000) == -1
    assert bucket_index(-60_000, 60_000) == -1
    assert bucket_index(-60_001, 60_000) == -2


def test_lateness_boundary() -> None:
    assert not is_too_late(1_000, 2_000, 1_000)
    assert is_too_late(999, 2_000, 1_000)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 10_000_000), min_size=1, max_size=60), st.integers(1, 200))
def test_series_sums_equal_a_recount(times: list[int], retain: int) -> None:
    window = WindowSpec("w", 60_000 * min(retain, 50), 60_000)
    series = BucketSeries(SeriesKind.PURCHASES, 60_000, retain)
    newest = 0
    for ts in times:
        newest = max(newest, ts)
        series.add(ts, (1, ts % 7), newest)
    assert len(series.buckets) <= retain
    assert all(b >= series.oldest_kept(newest) for b in series.buckets)
    assert series.sums(newest, window) == [
        sum(1 for t in times if in_window(t, newest, window)),
        sum(t % 7 for t in times if in_window(t, newest, window)),
    ]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 600_000), st.integers(0, 2**61)), min_size=1, max_size=40), st.randoms())
def test_saturated_sums_do_not_depend_on_arrival_order(events: list[tuple[int, int]], rng: random.Random) -> None:
    window = WindowSpec("w", 600_000, 60_000)
    newest = max(ts for ts, _ in events)

    def fold(order: list[tuple[int, int]]) -> BucketSeries:
        series = BucketSeries(SeriesKind.PURCHASES, 60_000, 10)
        seen = 0
        for ts, spend in order:
            seen = max(seen, ts)
            series.add(ts, (1, spend), seen)
        # Retention is as of the newest event, whatever the order.
        series.add(newest, (0, 0), newest)
        return series

    shuffled = list(events)
    rng.shuffle(shuffled)
    first, second = fold(events), fold(shuffled)
    assert first.buckets == second.buckets
    assert all(0 <= value <= MAX_STORED_AMOUNT for values in first.buckets.values() for value in values)
    expected = sum(spend for ts, spend in events if in_window(ts, newest, window))
    assert first.sums(newest, window)[1] == min(expected, MAX_STORED_AMOUNT)
