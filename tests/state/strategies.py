"""Hypothesis strategies for event streams, and the brute-force recomputation the aggregates are checked against."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

from state.events import EVENT_TYPE_NAMES, EventType, StateEvent, normalise_event
from state.fold import FoldOutcome, fold_event
from state.record import UserState
from state.spec import StateSpec, WindowSpec

T0_MS = 1_750_000_000_000

SMALL_SPEC = StateSpec(
    recent_window=5,
    dedupe_ids=200,
    allowed_lateness_ms=20_000,
    count_windows=(WindowSpec("10s", 10_000, 1_000), WindowSpec("30s", 30_000, 5_000)),
    spend_window=WindowSpec("1m", 60_000, 10_000),
    top_categories=3,
    top_categories_kept=6,
    top_terms=3,
    top_terms_kept=6,
    decay_half_life_ms=15_000,
    max_query_terms=3,
)
"""Windows, lateness and half-life of seconds: random streams cross every boundary and eviction path."""

DEFAULT_SPEC = StateSpec()

CATEGORY_POOL = (11, 12, 13, 14, 15, -16)
"""At most six distinct categories (SMALL_SPEC keeps six): weights stay exact."""
TERM_POOL = (21, 22, 23, -24, 25, 26)


@dataclass(frozen=True)
class Stream:
    """Distinct events in the order they arrive; arrival order respects the spec's lateness."""

    spec: StateSpec
    arrivals: tuple[StateEvent, ...]


def _event(draw: st.DrawFn, event_id: int, ts_ms: int, spec: StateSpec) -> StateEvent:
    type_code = draw(st.sampled_from(list(EventType)))
    if type_code == EventType.SEARCH:
        terms = draw(st.lists(st.sampled_from(TERM_POOL), min_size=1, max_size=spec.max_query_terms + 2))
        return StateEvent(event_id, type_code, ts_ms, query_terms=tuple(terms))
    category = draw(st.sampled_from((0, *CATEGORY_POOL)))
    item = draw(st.integers(-(2**63), 2**63 - 1))
    if type_code == EventType.PURCHASE:
        quantity = draw(st.integers(1, 5))
        price = draw(st.floats(0.0, 10_000.0, allow_nan=False))
        return StateEvent(event_id, type_code, ts_ms, item, category, (), quantity, price)
    return StateEvent(event_id, type_code, ts_ms, item, category)


@st.composite
def streams(draw: st.DrawFn, spec: StateSpec | None = None, max_events: int = 40) -> Stream:
    """Events over a span of many windows, arriving out of order but never later than the allowed lateness.

    Arrival order sorts by ``ts_ms + jitter`` with jitter in [0, lateness]: if A arrives after B then
    ``A.ts >= B.ts - lateness``, so no event is too late when it arrives.
    """
    spec = spec or draw(st.sampled_from([SMALL_SPEC, DEFAULT_SPEC]))
    span_ms = max(w.length_ms for w in (*spec.count_windows, spec.spend_window)) * 3
    n = draw(st.integers(1, max_events))
    ids = draw(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=n, max_size=n, unique=True))
    times = draw(st.lists(st.integers(T0_MS, T0_MS + span_ms), min_size=n, max_size=n))
    # Bursts: many events in the same or neighbouring buckets.
    if draw(st.booleans()):
        times = [T0_MS + (t - T0_MS) // 97 for t in times]
    events = [_event(draw, i, t, spec) for i, t in zip(ids, times, strict=True)]
    jitter = draw(st.lists(st.integers(0, spec.allowed_lateness_ms), min_size=n, max_size=n))
    order = sorted(range(n), key=lambda k: (events[k].ts_ms + jitter[k], k))
    return Stream(spec, tuple(events[k] for k in order))


def fold_all(events: Sequence[StateEvent], spec: StateSpec, record: UserState | None = None) -> UserState:
    """Fold events that must all be accepted."""
    record = record or UserState.new()
    for event in events:
        outcome = fold_event(record, event, spec)
        assert outcome is FoldOutcome.ACCEPTED, (outcome, event)
    return record


@dataclass
class Expected:
    """The aggregates recomputed from the raw events, with no buckets or incremental state."""

    counts: dict[str, int]
    weights_categories: dict[int, float]
    weights_terms: dict[int, float]


def brute_force(events: Sequence[StateEvent], spec: StateSpec) -> Expected:
    """Recount every aggregate from the full list of accepted events, as of their newest event time."""
    stored = [normalise_event(e, spec.max_query_terms) for e in events]
    as_of = max(e.ts_ms for e in stored)

    def in_window(ts_ms: int, window: WindowSpec) -> bool:
        # Straight from the definition: the window's buckets end with the bucket holding `as_of`.
        return as_of // window.bucket_ms - ts_ms // window.bucket_ms < window.buckets

    counts: dict[str, int] = {}
    for window in spec.count_windows:
        for code, name in enumerate(EVENT_TYPE_NAMES):
            counts[f"{name}_count_{window.name}"] = sum(
                1 for e in stored if e.type_code == code and in_window(e.ts_ms, window)
            )
    purchases = [e for e in stored if e.type_code == EventType.PURCHASE and in_window(e.ts_ms, spec.spend_window)]
    counts[f"purchase_count_{spec.spend_window.name}"] = len(purchases)
    spend_milli = sum(e.quantity * round(e.price * 1000) for e in purchases)
    counts[f"purchase_spend_milli_{spec.spend_window.name}"] = spend_milli

    def decayed(keys_of: list[tuple[int, int]]) -> dict[int, float]:
        weights: dict[int, float] = {}
        for key, ts_ms in keys_of:
            weights[key] = weights.get(key, 0.0) + math.exp2(-(as_of - ts_ms) / spec.decay_half_life_ms)
        return weights

    categories = [(e.category_hash, e.ts_ms) for e in stored if e.category_hash]
    terms = [(t, e.ts_ms) for e in stored for t in e.query_terms if t]
    return Expected(counts, decayed(categories), decayed(terms))


def realistic_user(
    rng: random.Random, n_events: int = 20, span_ms: int = 86_400_000, hidden_dim: int = 64
) -> UserState:
    """A user with a realistic event mix (60 % browse, 30 % search, 10 % purchase) and a hidden vector."""

    def h() -> int:
        return rng.getrandbits(64) - 2**63

    categories = [h() for _ in range(50)]
    terms = [h() for _ in range(500)]
    events = []
    for _ in range(n_events):
        ts_ms = T0_MS + rng.randrange(span_ms)
        r = rng.random()
        if r < 0.6:
            events.append(StateEvent(h(), EventType.BROWSE, ts_ms, h(), rng.choice(categories)))
        elif r < 0.9:
            query = tuple(rng.choice(terms) for _ in range(rng.randint(1, 4)))
            events.append(StateEvent(h(), EventType.SEARCH, ts_ms, query_terms=query))
        else:
            price = round(rng.uniform(1, 200), 2)
            events.append(
                StateEvent(h(), EventType.PURCHASE, ts_ms, h(), rng.choice(categories), (), rng.randint(1, 3), price)
            )
    record = fold_all(sorted(events, key=lambda e: e.ts_ms), DEFAULT_SPEC)
    record.hidden = np.asarray([rng.uniform(-1, 1) for _ in range(hidden_dim)], dtype=np.float32)
    record.model_version = "gru-2025.06.1"
    record.version = n_events
    return record
