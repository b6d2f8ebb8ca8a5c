"""Event-time windows: bucket arithmetic and the sparse bucket series the windowed aggregates live in.

Everything here is a pure function of timestamps passed in; there is no wall clock. A window is a whole number
of epoch-aligned buckets (see `WindowSpec`), so a windowed sum over buckets equals a recount of the raw events
that fall into the same buckets, exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

from state.layout import MAX_STORED_AMOUNT
from state.spec import WindowSpec


def bucket_index(ts_ms: int, bucket_ms: int) -> int:
    """The epoch-aligned bucket that holds `ts_ms` (floor division, so negative times work too)."""
    return ts_ms // bucket_ms


def window_first_bucket(as_of_ms: int, window: WindowSpec) -> int:
    """The oldest bucket of `window` as of `as_of_ms`; the newest is the bucket holding `as_of_ms`."""
    return bucket_index(as_of_ms, window.bucket_ms) - window.buckets + 1


def window_start_ms(as_of_ms: int, window: WindowSpec) -> int:
    """The first millisecond `window` covers as of `as_of_ms` (inclusive)."""
    return window_first_bucket(as_of_ms, window) * window.bucket_ms


def in_window(ts_ms: int, as_of_ms: int, window: WindowSpec) -> bool:
    """Whether an event at `ts_ms` counts in `window` as of `as_of_ms` (the brute-force definition)."""
    return window_start_ms(as_of_ms, window) <= ts_ms <= as_of_ms


def is_too_late(ts_ms: int, newest_ms: int, allowed_lateness_ms: int) -> bool:
    """Whether an event is older than the user's newest event time minus the allowed lateness (strictly)."""
    return ts_ms < newest_ms - allowed_lateness_ms


class SeriesKind(IntEnum):
    """What a bucket series counts; the code is stored in the record."""

    TYPE_COUNTS = 1
    """Three values per bucket: browse, search and purchase event counts."""
    PURCHASES = 2
    """Two values per bucket: purchase events and spend in thousandths of the currency unit."""

    @property
    def width(self) -> int:
        """Values per bucket."""
        return 3 if self is SeriesKind.TYPE_COUNTS else 2


@dataclass
class BucketSeries:
    """Sparse per-bucket sums: only buckets with events are stored, and only the newest `retain_buckets`.

    The parameters travel with the data so that a record built under other bucket sizes is never read as if it
    had been built under the current ones (see `state.aggregates.reconcile_aggregates`).
    """

    kind: SeriesKind
    bucket_ms: int
    retain_buckets: int
    buckets: dict[int, list[int]] = field(default_factory=dict)
    pruned_from: int | None = field(default=None, compare=False, repr=False)
    """No bucket lies below this index (None: not known, as after decoding). Retention is enforced only when the
    oldest kept bucket moves past it, instead of a scan of every bucket at every event."""

    @property
    def signature(self) -> str:
        """Identifies the parameters this series was built under."""
        return f"{self.kind.name.lower()}/{self.bucket_ms}/{self.retain_buckets}"

    def oldest_kept(self, newest_ms: int) -> int:
        """The oldest bucket index kept when the user's newest event time is `newest_ms`."""
        return bucket_index(newest_ms, self.bucket_ms) - self.retain_buckets + 1

    def add(self, ts_ms: int, values: tuple[int, ...], newest_ms: int) -> None:
        """Add `values` (non-negative) to the bucket of `ts_ms`, then drop buckets that fell out of retention.

        A sum saturates at `MAX_STORED_AMOUNT`, what the codec reads back: one purchase spends at most the
        contract's 1e18 thousandths, but a user's purchases are not bounded in number. For non-negative values
        ``min(a + b, cap)`` is associative and commutative, so saturated sums still do not depend on arrival order.
        """
        buckets = self.buckets
        oldest = newest_ms // self.bucket_ms - self.retain_buckets + 1  # oldest_kept, inlined: runs per event
        index = ts_ms // self.bucket_ms
        pruned_from = self.pruned_from
        if index >= oldest:
            sums = buckets.get(index)
            if sums is None:
                sums = buckets[index] = [0] * self.kind.width
                if pruned_from is not None and index < pruned_from:
                    pruned_from = index
            for i, value in enumerate(values):
                if value:
                    total = sums[i] + value
                    sums[i] = total if total <= MAX_STORED_AMOUNT else MAX_STORED_AMOUNT
        if pruned_from is None or oldest > pruned_from:
            if buckets and min(buckets) < oldest:
                for stale in [b for b in buckets if b < oldest]:
                    del buckets[stale]
            pruned_from = oldest
        self.pruned_from = pruned_from

    def sums(self, as_of_ms: int, window: WindowSpec) -> list[int]:
        """Per-value sums over the buckets of `window` as of `as_of_ms`, saturated like the buckets' own."""
        first = window_first_bucket(as_of_ms, window)
        last = bucket_index(as_of_ms, window.bucket_ms)
        inside = [values for index, values in self.buckets.items() if first <= index <= last]
        if not inside:
            return [0] * self.kind.width
        # Column sums in C (zip and sum): this runs for every series of every profile published.
        return [
            total if total <= MAX_STORED_AMOUNT else MAX_STORED_AMOUNT for total in map(sum, zip(*inside, strict=True))
        ]
