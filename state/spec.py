"""The state's parameters: one frozen object, read once at start-up; every size is configurable."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Literal

from state.errors import StateSpecError

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS

HiddenDType = Literal["float16", "float32"]


@dataclass(frozen=True)
class WindowSpec:
    """An event-time window of `length_ms`, counted in aligned buckets of `bucket_ms`.

    ``name`` becomes the suffix of the aggregate keys (``purchase_count_24h``). The window "as of" time T is the
    ``length_ms // bucket_ms`` buckets ending with the bucket that holds T; buckets are aligned to the Unix
    epoch (``ts_ms // bucket_ms``), so the window covers between ``length_ms - bucket_ms`` (exclusive) and
    ``length_ms`` of event time.
    """

    name: str
    length_ms: int
    bucket_ms: int

    @property
    def buckets(self) -> int:
        """How many buckets the window spans."""
        return self.length_ms // self.bucket_ms


def _default_count_windows() -> tuple[WindowSpec, ...]:
    return (
        WindowSpec("1h", HOUR_MS, MINUTE_MS),
        WindowSpec("24h", DAY_MS, 15 * MINUTE_MS),
        WindowSpec("7d", 7 * DAY_MS, HOUR_MS),
    )


@dataclass(frozen=True)
class StateSpec:
    """Sizes, windows and policies of the per-user state.

    ``hidden_dtype`` defaults to float32: the hidden vector is the GRU's recurrent state and is fed back into
    the next step, so float16 rounding (about 5e-4 relative) would accumulate step after step and make the live
    embedding drift from a re-encode of the same events. At 64 dimensions float32 costs 128 bytes more than
    float16, and a record at defaults still fits the 2 KiB budget. Choose float16 for larger hidden vectors.
    """

    recent_window: int = 50
    """Most recent events kept per user (by event time), enough to rebuild the hidden vector."""
    dedupe_ids: int = 64
    """Ids of accepted events that fell out of the recent window, kept while they are within the lateness."""
    allowed_lateness_ms: int = HOUR_MS
    """An event older than the user's newest event time minus this is rejected as too late."""
    count_windows: tuple[WindowSpec, ...] = field(default_factory=_default_count_windows)
    """Windows for the per-type event counts."""
    spend_window: WindowSpec = field(default_factory=lambda: WindowSpec("30d", 30 * DAY_MS, DAY_MS))
    """Window for the purchase count and spend."""
    top_categories: int = 8
    """Categories reported in a profile."""
    top_categories_kept: int = 16
    """Category candidates kept in the record (weights are exact while a user has at most this many)."""
    top_terms: int = 8
    """Search terms reported in a profile."""
    top_terms_kept: int = 16
    """Search-term candidates kept in the record."""
    decay_half_life_ms: int = 7 * DAY_MS
    """Half-life of the category and search-term weights, in event time."""
    max_query_terms: int = 4
    """Hashed terms kept per search event."""
    user_ttl_ms: int = 30 * DAY_MS
    """A user idle this long (event time) is expired."""
    hidden_dtype: HiddenDType = "float32"
    """How the codec stores the hidden vector; in memory it is always float32."""

    def __post_init__(self) -> None:
        positive = {
            "recent_window": self.recent_window,
            "decay_half_life_ms": self.decay_half_life_ms,
            "user_ttl_ms": self.user_ttl_ms,
        }
        non_negative = {
            "dedupe_ids": self.dedupe_ids,
            "allowed_lateness_ms": self.allowed_lateness_ms,
            "top_categories": self.top_categories,
            "top_terms": self.top_terms,
            "max_query_terms": self.max_query_terms,
        }
        for name, value in positive.items():
            if value <= 0:
                raise StateSpecError(f"{name} must be positive, got {value}")
        for name, value in non_negative.items():
            if value < 0:
                raise StateSpecError(f"{name} must not be negative, got {value}")
        if self.top_categories_kept < self.top_categories:
            raise StateSpecError("top_categories_kept must be at least top_categories")
        if self.top_terms_kept < self.top_terms:
            raise StateSpecError("top_terms_kept must be at least top_terms")
        if self.hidden_dtype not in ("float16", "float32"):
            raise StateSpecError(f"hidden_dtype must be float16 or float32, got {self.hidden_dtype!r}")
        windows = (*self.count_windows, self.spend_window)
        for window in windows:
            if window.bucket_ms <= 0 or window.length_ms <= 0 or window.length_ms % window.bucket_ms:
                raise StateSpecError(
                    f"window {window.name!r}: length_ms must be a positive multiple of a positive bucket_ms"
                )
        names = [w.name for w in self.count_windows]
        if len(set(names)) != len(names):
            raise StateSpecError("count window names must be distinct")
        if self.spend_window.name in names:
            # purchase_count_<name> would be produced twice with different bucket sizes.
            raise StateSpecError("the spend window's name must differ from every count window's name")
        # Specs key caches that are consulted for every event (the aggregators of a spec): hash the fields once.
        object.__setattr__(self, "_hash", hash(tuple(getattr(self, f.name) for f in fields(self))))

    def __hash__(self) -> int:
        return int(self.__dict__["_hash"])
