"""Folding: event-time aggregates equal a brute-force recount, too-late and duplicate events change nothing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from state.aggregates import profile_aggregates
from state.codec import encode_state
from state.decay import DecayedWeights, decay_factor
from state.events import StateEvent, event_order_key, hash_hex, normalise_event
from state.fold import FoldOutcome, fold_event
from state.record import UserState
from tests.state.strategies import (
    DEFAULT_SPEC,
    SMALL_SPEC,
    T0_MS,
    Stream,
    brute_force,
    fold_all,
    streams,
)

FAST = settings(max_examples=60, deadline=None)


def _weights(record: UserState, kind: str) -> dict[int, float]:
    """The table's weights as of the user's newest event (a table is stored as of the last event that added to
    it, which may be older)."""
    for key, state in record.aggregates.items():
        if key.startswith(kind) and isinstance(state, DecayedWeights):
            assert state.reference_ms <= record.last_event_ms
            factor = decay_factor(record.last_event_ms - state.reference_ms, state.half_life_ms)
            return {hashed: weight * factor for hashed, weight in state.weights.items()}
    raise AssertionError(f"no {kind} weights in the record")


def _assert_matches_brute_force(record: UserState, stream: Stream) -> None:
    spec = stream.spec
    expected = brute_force(stream.arrivals, spec)
    got = profile_aggregates(record, spec)
    spend_key = f"purchase_spend_{spec.spend_window.name}"
    for key, value in expected.counts.items():
        if key.startswith("purchase_spend_milli_"):
            assert got[spend_key] == value / 1000, key
        else:
            assert got[key] == value, key
    # Weights are kept exactly (to float32) while a user has no more distinct keys than the table keeps.
    for kind, want in (("categories", expected.weights_categories), ("search_terms", expected.weights_terms)):
        have = _weights(record, kind)
        assert set(have) == set(want), kind
        for hashed, weight in want.items():
            assert have[hashed] == pytest.approx(weight, rel=1e-5), (kind, hashed)
    reported = _top(got, "top_categories")
    assert len(reported) == min(spec.top_categories, len(expected.weights_categories))
    by_hex = {hash_hex(k): w for k, w in expected.weights_categories.items()}
    ranked = sorted(by_hex.values(), reverse=True)
    for entry, want_weight in zip(reported, ranked, strict=False):
        assert entry["weight"] == pytest.approx(want_weight, rel=1e-5)
        assert entry["weight"] == pytest.approx(by_hex[str(entry["hash"])], rel=1e-5)


def _top(aggregates: dict[str, object], key: str) -> list[dict[str, object]]:
    value = aggregates[key]
    assert isinstance(value, list)
    return value


@FAST
@given(streams())
def test_aggregates_equal_brute_force_for_out_of_order_streams(stream: Stream) -> None:
    record = fold_all(stream.arrivals, stream.spec)
    _assert_matches_brute_force(record, stream)
    assert record.event_count == len(stream.arrivals)
    assert record.first_event_ms == min(e.ts_ms for e in stream.arrivals)
    assert record.last_event_ms == max(e.ts_ms for e in stream.arrivals)


@FAST
@given(streams())
def test_record_does_not_depend_on_arrival_order(stream: Stream) -> None:
    in_time_order = sorted(stream.arrivals, key=event_order_key)
    a = fold_all(stream.arrivals, stream.spec)
    b = fold_all(in_time_order, stream.spec)
    assert a.recent == b.recent
    assert a.evicted_ids == b.evicted_ids
    aggs_a, aggs_b = profile_aggregates(a, stream.spec), profile_aggregates(b, stream.spec)
    for key in ("top_categories", "top_search_terms"):
        top_a = {str(e["hash"]): e["weight"] for e in _top(aggs_a, key)}
        top_b = {str(e["hash"]): e["weight"] for e in _top(aggs_b, key)}
        assert top_a == pytest.approx(top_b, rel=1e-5)
        del aggs_a[key], aggs_b[key]
    assert aggs_a == aggs_b


@FAST
@given(streams())
def test_recent_window_holds_the_newest_events_in_order(stream: Stream) -> None:
    spec = stream.spec
    record = fold_all(stream.arrivals, spec)
    newest = sorted(stream.arrivals, key=event_order_key)[-spec.recent_window :]
    assert record.recent == [normalise_event(e, spec.max_query_terms) for e in newest]


@FAST
@given(streams(), st.data())
def test_too_late_event_is_rejected_and_changes_nothing(stream: Stream, data: st.DataObject) -> None:
    spec = stream.spec
    record = fold_all(stream.arrivals, spec)
    before, before_bytes = record.copy(), encode_state(record)
    horizon = record.last_event_ms - spec.allowed_lateness_ms
    late_ts = data.draw(st.integers(horizon - 10 * spec.allowed_lateness_ms, horizon - 1))
    late = StateEvent(
        event_id_hash=data.draw(st.integers(-(2**63), 2**63 - 1)),
        type_code=2,
        ts_ms=late_ts,
        category_hash=11,
        quantity=1,
        price=5.0,
    )
    assert fold_event(record, late, spec) is FoldOutcome.TOO_LATE
    assert record == before
    assert encode_state(record) == before_bytes


@FAST
@given(streams(spec=SMALL_SPEC), st.data())
def test_replayed_events_are_duplicates_and_change_nothing(stream: Stream, data: st.DataObject) -> None:
    spec = stream.spec
    record = fold_all(stream.arrivals, spec)
    before = record.copy()
    replays = data.draw(st.lists(st.sampled_from(stream.arrivals), min_size=1, max_size=10))
    for event in replays:
        outcome = fold_event(record, event, spec)
        # SMALL_SPEC remembers enough ids that every replay within the lateness is recognised.
        if event.ts_ms < record.last_event_ms - spec.allowed_lateness_ms:
            assert outcome is FoldOutcome.TOO_LATE
        else:
            assert outcome is FoldOutcome.DUPLICATE
    assert record == before


@FAST
@given(streams(), st.data())
def test_duplicates_interleaved_in_the_stream_are_ignored(stream: Stream, data: st.DataObject) -> None:
    spec = stream.spec
    arrivals = list(stream.arrivals)
    for _ in range(data.draw(st.integers(1, 5))):
        position = data.draw(st.integers(0, len(arrivals) - 1))
        # A redelivery arrives after the original, possibly with other fields (only the id matters).
        copy = arrivals[position]
        later = data.draw(st.integers(position + 1, len(arrivals)))
        arrivals.insert(later, copy)
    record = UserState.new()
    outcomes = [fold_event(record, e, spec) for e in arrivals]
    assert outcomes.count(FoldOutcome.ACCEPTED) == len(stream.arrivals)
    _assert_matches_brute_force(record, stream)


def test_lateness_boundary_is_inclusive() -> None:
    spec = DEFAULT_SPEC
    record = fold_all([StateEvent(1, 0, T0_MS)], spec)
    at_horizon = StateEvent(2, 0, T0_MS - spec.allowed_lateness_ms)
    past_horizon = StateEvent(3, 0, T0_MS - spec.allowed_lateness_ms - 1)
    assert fold_event(record, past_horizon, spec) is FoldOutcome.TOO_LATE
    assert fold_event(record, at_horizon, spec) is FoldOutcome.ACCEPTED
    assert record.first_event_ms == at_horizon.ts_ms
    assert record.last_event_ms == T0_MS


def test_first_event_of_a_user_is_never_too_late() -> None:
    record = UserState.new()
    assert fold_event(record, StateEvent(1, 0, 0), DEFAULT_SPEC) is FoldOutcome.ACCEPTED


def test_too_late_is_checked_before_duplicate() -> None:
    spec = DEFAULT_SPEC
    event = StateEvent(1, 0, T0_MS)
    record = fold_all([event, StateEvent(2, 0, T0_MS + 2 * spec.allowed_lateness_ms)], spec)
    assert fold_event(record, event, spec) is FoldOutcome.TOO_LATE


def test_fold_does_not_touch_encoder_fields() -> None:
    record = UserState.new()
    record.model_version, record.version = "m1", 7
    fold_all([StateEvent(1, 0, T0_MS)], DEFAULT_SPEC, record)
    assert (record.model_version, record.version, record.hidden.size) == ("m1", 7, 0)


def test_evicted_ids_are_forgotten_past_the_lateness() -> None:
    spec = SMALL_SPEC
    events = [StateEvent(i, 0, T0_MS + i) for i in range(1, spec.recent_window + 3)]
    record = fold_all(events, spec)
    assert [i for _, i in record.evicted_ids] == [1, 2]
    fold_all([StateEvent(999, 0, T0_MS + spec.allowed_lateness_ms + 3)], spec, record)
    # Events 1 and 2 are now older than the horizon (event 3 is at it): replaying them is too late anyway.
    assert [i for _, i in record.evicted_ids] == [3]
    assert fold_event(record, events[0], spec) is FoldOutcome.TOO_LATE


def test_search_terms_are_capped_and_prices_kept_to_thousandths() -> None:
    spec = DEFAULT_SPEC
    record = fold_all(
        [
            StateEvent(1, 1, T0_MS, query_terms=(1, 2, 3, 4, 5, 6)),
            StateEvent(2, 2, T0_MS, item_hash=9, quantity=3, price=0.1 + 0.2),
        ],
        spec,
    )
    search, purchase = sorted(record.recent, key=lambda e: e.type_code)
    assert search.query_terms == (1, 2, 3, 4)
    assert purchase.price == 0.3
    assert profile_aggregates(record, spec)["purchase_spend_30d"] == 0.9
    terms = _top(profile_aggregates(record, spec), "top_search_terms")
    assert [t["hash"] for t in terms] == [hash_hex(k) for k in (1, 2, 3, 4)]


def test_full_weight_table_keeps_the_heavier_key() -> None:
    spec = SMALL_SPEC
    kept = spec.top_categories_kept
    events = [StateEvent(i, 0, T0_MS + i * 1000, category_hash=100 + i) for i in range(kept)]
    record = fold_all(events, spec)
    # A late, light occurrence of a new category does not push out a heavier one...
    fold_all([StateEvent(500, 0, T0_MS - 1000, category_hash=777)], spec, record)
    assert 777 not in _weights(record, "categories")
    # ...a fresh one replaces the lightest.
    fold_all([StateEvent(501, 0, T0_MS + kept * 1000, category_hash=778)], spec, record)
    weights = _weights(record, "categories")
    assert 778 in weights and 100 not in weights and len(weights) == kept
