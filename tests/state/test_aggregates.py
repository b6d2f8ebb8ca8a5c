"""Aggregate keys, JSON readiness, and parameter changes that must not reuse state built under other ones."""

from __future__ import annotations

import json
import random

from state.aggregates import aggregate_keys, is_compatible, profile_aggregates, reconcile_aggregates
from state.events import StateEvent
from state.fold import FoldOutcome, fold_event
from state.record import UserState
from state.spec import StateSpec, WindowSpec
from tests.state.strategies import DEFAULT_SPEC, T0_MS, brute_force, fold_all, realistic_user


def test_keys_at_defaults() -> None:
    assert aggregate_keys(DEFAULT_SPEC) == (
        "browse_count_1h", "search_count_1h", "purchase_count_1h",
        "browse_count_24h", "search_count_24h", "purchase_count_24h",
        "browse_count_7d", "search_count_7d", "purchase_count_7d",
        "purchase_count_30d", "purchase_spend_30d",
        "top_categories", "top_search_terms",
    )  # fmt: skip


def test_aggregates_are_json_ready_and_empty_for_a_new_user() -> None:
    empty = profile_aggregates(UserState.new(), DEFAULT_SPEC)
    assert json.loads(json.dumps(empty)) == empty
    assert empty["purchase_spend_30d"] == 0.0 and empty["top_categories"] == []
    full = profile_aggregates(realistic_user(random.Random(2)), DEFAULT_SPEC)
    assert json.loads(json.dumps(full)) == full
    assert list(full) == list(aggregate_keys(DEFAULT_SPEC))


def test_changed_windows_rebuild_from_the_recent_window_instead_of_reusing_buckets() -> None:
    events = [StateEvent(i, i % 3, T0_MS + i * 600_000, category_hash=7, quantity=1, price=2.0) for i in range(12)]
    record = fold_all(events, DEFAULT_SPEC)
    wider = StateSpec(count_windows=(WindowSpec("2h", 7_200_000, 600_000),))
    assert not is_compatible(record, wider)
    before = record.copy()
    # Reading under another spec works on a rebuilt copy and leaves the record alone...
    assert profile_aggregates(record, wider)["browse_count_2h"] == brute_force(events, wider).counts["browse_count_2h"]
    assert record == before
    # ...folding under it replaces the stale states in place.
    assert fold_event(record, StateEvent(99, 0, T0_MS + 12 * 600_000), wider) is FoldOutcome.ACCEPTED
    assert is_compatible(record, wider)
    assert profile_aggregates(record, wider) == profile_aggregates(
        fold_all([*events, StateEvent(99, 0, T0_MS + 12 * 600_000)], wider), wider
    )
    assert not reconcile_aggregates(record, wider)
