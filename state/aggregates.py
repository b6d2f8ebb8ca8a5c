"""Profile aggregates as small aggregators: `initialise` a state, `add` events to it, read its `result`.

Each aggregator's state carries the parameters it was built under (its `signature`). When the running
`StateSpec` asks for other parameters, the stale state is dropped and a fresh one is rebuilt from the user's
recent window (`reconcile_aggregates`), so a parameter change never silently reuses state built under another.

All results are "as of" the user's newest event time, `UserState.last_event_ms`.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, Generic, TypeVar

from state.decay import DecayedWeights, TopKind
from state.events import EVENT_TYPE_NAMES, EventType, StateEvent, hash_hex
from state.record import AggregateState, UserState
from state.spec import StateSpec, WindowSpec
from state.windows import BucketSeries, SeriesKind

S = TypeVar("S", BucketSeries, DecayedWeights)


class Aggregator(ABC, Generic[S]):
    """One aggregate: how to start it, fold one event into it and read it out."""

    @functools.cached_property
    def signature(self) -> str:
        """Equals the `signature` of the states this aggregator builds."""
        return self.initialise().signature

    @abstractmethod
    def initialise(self) -> S:
        """A state with no events."""

    @abstractmethod
    def add(self, state: S, event: StateEvent, newest_ms: int) -> None:
        """Fold one accepted event; `newest_ms` is the user's newest event time including this event."""

    @abstractmethod
    def result(self, state: S, as_of_ms: int) -> dict[str, object]:
        """JSON-ready values as of `as_of_ms`."""

    @abstractmethod
    def own(self, state: AggregateState) -> S:
        """`state` typed as this aggregator's state (raises TypeError for a state of another kind)."""

    def rebuild(self, events: list[StateEvent]) -> S:
        """A state built from `events` (ordered by event time): the best available after a parameter change."""
        state = self.initialise()
        newest_ms: int | None = None
        for event in events:
            newest_ms = event.ts_ms if newest_ms is None else max(newest_ms, event.ts_ms)
            self.add(state, event, newest_ms)
        return state


class TypeCounts(Aggregator[BucketSeries]):
    """Event counts per type over windows that share one bucket size."""

    def __init__(self, bucket_ms: int, windows: tuple[WindowSpec, ...]) -> None:
        self.bucket_ms = bucket_ms
        self.windows = windows
        self.retain_buckets = max(w.buckets for w in windows)
        self._keys = [(w, [f"{name}_count_{w.name}" for name in EVENT_TYPE_NAMES]) for w in windows]
        self._unit_values = [tuple(int(code == t) for code in range(len(EVENT_TYPE_NAMES))) for t in EventType]

    def initialise(self) -> BucketSeries:
        return BucketSeries(SeriesKind.TYPE_COUNTS, self.bucket_ms, self.retain_buckets)

    def add(self, state: BucketSeries, event: StateEvent, newest_ms: int) -> None:
        state.add(event.ts_ms, self._unit_values[event.type_code], newest_ms)

    def result(self, state: BucketSeries, as_of_ms: int) -> dict[str, object]:
        out: dict[str, object] = {}
        for window, keys in self._keys:
            out.update(zip(keys, state.sums(as_of_ms, window), strict=True))
        return out

    def own(self, state: AggregateState) -> BucketSeries:
        if not isinstance(state, BucketSeries):
            raise TypeError(f"{self.signature} needs a BucketSeries")
        return state


class Purchases(Aggregator[BucketSeries]):
    """Purchase count and spend (quantity times unit price) over one window."""

    def __init__(self, window: WindowSpec) -> None:
        self.window = window

    def initialise(self) -> BucketSeries:
        return BucketSeries(SeriesKind.PURCHASES, self.window.bucket_ms, self.window.buckets)

    def add(self, state: BucketSeries, event: StateEvent, newest_ms: int) -> None:
        # Non-purchases add nothing but still advance retention, so the stored buckets never depend on the
        # order events arrived in.
        if event.type_code == EventType.PURCHASE:
            state.add(event.ts_ms, (1, event.spend_milli), newest_ms)
        else:
            state.add(event.ts_ms, (0, 0), newest_ms)

    def result(self, state: BucketSeries, as_of_ms: int) -> dict[str, object]:
        count, spend_milli = state.sums(as_of_ms, self.window)
        return {
            f"purchase_count_{self.window.name}": count,
            f"purchase_spend_{self.window.name}": spend_milli / 1000,
        }

    def own(self, state: AggregateState) -> BucketSeries:
        if not isinstance(state, BucketSeries):
            raise TypeError(f"{self.signature} needs a BucketSeries")
        return state


class TopHashes(Aggregator[DecayedWeights]):
    """The heaviest category or search-term hashes by decayed weight."""

    def __init__(self, kind: TopKind, half_life_ms: int, capacity: int, report: int, key: str) -> None:
        self.kind = kind
        self.half_life_ms = half_life_ms
        self.capacity = capacity
        self.report = report
        self.key = key

    def initialise(self) -> DecayedWeights:
        return DecayedWeights(self.kind, self.half_life_ms, self.capacity)

    def add(self, state: DecayedWeights, event: StateEvent, newest_ms: int) -> None:
        keys = self.keys_of(event)
        # Weights are stored as of the table's own reference time, which may lag the user's newest event: a table
        # is rescaled only when an event adds to it (or, empty, only its reference moves), not at every event of
        # the user (a browse carries no search terms, a search no category). Reading applies the remaining decay.
        if keys or not state.weights:
            state.advance(newest_ms)
        for key in keys:
            state.add(key, event.ts_ms)

    def keys_of(self, event: StateEvent) -> tuple[int, ...]:
        """The hashes one event contributes (absent hashes are 0 and contribute nothing)."""
        if self.kind is TopKind.CATEGORIES:
            return (event.category_hash,) if event.category_hash else ()
        return tuple(term for term in event.query_terms if term)

    def result(self, state: DecayedWeights, as_of_ms: int) -> dict[str, object]:
        top = state.top(self.report, as_of_ms)
        # Seven significant digits: what a float32 weight holds, without float noise in the JSON.
        return {self.key: [{"hash": hash_hex(key), "weight": float(f"{weight:.7g}")} for key, weight in top]}

    def own(self, state: AggregateState) -> DecayedWeights:
        if not isinstance(state, DecayedWeights):
            raise TypeError(f"{self.signature} needs DecayedWeights")
        return state


@functools.cache
def aggregators_for(spec: StateSpec) -> tuple[Aggregator[Any], ...]:
    """The aggregators a spec asks for: count windows grouped by bucket size, purchases, top hashes."""
    by_bucket: dict[int, list[WindowSpec]] = {}
    for window in spec.count_windows:
        by_bucket.setdefault(window.bucket_ms, []).append(window)
    aggregators: list[Aggregator[Any]] = [TypeCounts(b, tuple(ws)) for b, ws in by_bucket.items()]
    aggregators.append(Purchases(spec.spend_window))
    aggregators.append(
        TopHashes(
            TopKind.CATEGORIES,
            spec.decay_half_life_ms,
            spec.top_categories_kept,
            spec.top_categories,
            "top_categories",
        )
    )
    aggregators.append(
        TopHashes(
            TopKind.SEARCH_TERMS,
            spec.decay_half_life_ms,
            spec.top_terms_kept,
            spec.top_terms,
            "top_search_terms",
        )
    )
    return tuple(aggregators)


@functools.cache
def aggregate_keys(spec: StateSpec) -> tuple[str, ...]:
    """The keys `profile_aggregates` returns, in the order it returns them."""
    keys = [f"{name}_count_{w.name}" for w in spec.count_windows for name in EVENT_TYPE_NAMES]
    keys += [f"purchase_count_{spec.spend_window.name}", f"purchase_spend_{spec.spend_window.name}"]
    keys += ["top_categories", "top_search_terms"]
    return tuple(keys)


@functools.cache
def _signatures(spec: StateSpec) -> frozenset[str]:
    return frozenset(a.signature for a in aggregators_for(spec))


def is_compatible(record: UserState, spec: StateSpec) -> bool:
    """Whether the record's aggregate states are exactly the ones `spec` asks for."""
    return record.aggregates.keys() == _signatures(spec)


def reconciled(record: UserState, spec: StateSpec) -> dict[str, AggregateState]:
    """The record's aggregate states for `spec`: kept where the parameters match, rebuilt from the window
    where they do not. Does not modify the record."""
    states: dict[str, AggregateState] = {}
    for aggregator in aggregators_for(spec):
        current = record.aggregates.get(aggregator.signature)
        states[aggregator.signature] = current if current is not None else aggregator.rebuild(record.recent)
    return states


def reconcile_aggregates(record: UserState, spec: StateSpec) -> bool:
    """Bring the record's aggregates in line with `spec` in place; True if anything was dropped or rebuilt."""
    if is_compatible(record, spec):
        return False
    record.aggregates = reconciled(record, spec)
    return True


def add_to_aggregates(
    aggregates: Mapping[str, AggregateState], event: StateEvent, spec: StateSpec, newest_ms: int
) -> None:
    """Fold one accepted event into every aggregate state (which must be reconciled with `spec`)."""
    for aggregator in aggregators_for(spec):
        aggregator.add(aggregator.own(aggregates[aggregator.signature]), event, newest_ms)


def profile_aggregates(record: UserState, spec: StateSpec) -> dict[str, object]:
    """JSON-ready aggregates as of the user's newest event time (`record.last_event_ms`).

    Keys (at the default spec, see docs/state.md): ``{browse,search,purchase}_count_{1h,24h,7d}``,
    ``purchase_count_30d``, ``purchase_spend_30d``, ``top_categories`` and ``top_search_terms`` (lists of
    ``{"hash": 16 hex digits, "weight": float}``, heaviest first). Does not modify the record.
    """
    states = record.aggregates if is_compatible(record, spec) else reconciled(record, spec)
    values: dict[str, object] = {}
    for aggregator in aggregators_for(spec):
        values.update(aggregator.result(aggregator.own(states[aggregator.signature]), record.last_event_ms))
    return {key: values[key] for key in aggregate_keys(spec)}
