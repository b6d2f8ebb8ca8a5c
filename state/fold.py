"""Folding one event into a user's record: pure event-time logic, no wall clock, no encoder.

Order of checks for an event E against a record R whose newest event time is ``R.last_event_ms``:

1. TOO_LATE if R has events and ``E.ts_ms < R.last_event_ms - allowed_lateness_ms`` (strictly older than the
   user's lateness horizon). Checked first, so the outcome depends only on timestamps, not on which ids are
   still remembered.
2. DUPLICATE if ``E.event_id_hash`` is the id of an event in the recent window or among the remembered ids
   of events that left it (``UserState.evicted_ids``, all within the lateness horizon).
3. Otherwise ACCEPTED: the event is folded in. Out-of-order events within the lateness are folded exactly like
   in-order ones; every aggregate is a function of the set of accepted events, not of their arrival order.

Only ACCEPTED changes the record. Duplicate detection is exact while a user has at most
``recent_window + dedupe_ids`` events within the allowed lateness of their newest event.
"""

from __future__ import annotations

import bisect
from enum import Enum
from operator import attrgetter, itemgetter

from state.aggregates import add_to_aggregates, reconcile_aggregates
from state.events import StateEvent, event_order_key, normalise_event
from state.record import UserState
from state.spec import StateSpec
from state.windows import is_too_late

_EVENT_ID = attrgetter("event_id_hash")
_SECOND = itemgetter(1)


class FoldOutcome(Enum):
    """What `fold_event` did with an event."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    TOO_LATE = "too_late"


def classify(record: UserState, event: StateEvent, spec: StateSpec) -> FoldOutcome:
    """The outcome `fold_event` would have, without changing anything."""
    if record.event_count and is_too_late(event.ts_ms, record.last_event_ms, spec.allowed_lateness_ms):
        return FoldOutcome.TOO_LATE
    if is_duplicate(record, event.event_id_hash):
        return FoldOutcome.DUPLICATE
    return FoldOutcome.ACCEPTED


def is_duplicate(record: UserState, event_id_hash: int) -> bool:
    """Whether an event with this id hash was accepted and is still remembered."""
    # Membership in a map compares in C (a generator expression ran a Python frame step per remembered event).
    return event_id_hash in map(_EVENT_ID, record.recent) or event_id_hash in map(_SECOND, record.evicted_ids)


def fold_event(
    record: UserState, event: StateEvent, spec: StateSpec, evicted: list[StateEvent] | None = None
) -> FoldOutcome:
    """Fold `event` into `record` in place if it is accepted; see the module docstring for the rules.

    Events that leave the recent window are appended to `evicted` (oldest first), so the worker can advance the
    base hidden vector over them. Does not touch the hidden vectors, `model_version` or `version`: the worker
    sets those after the encoder step.
    """
    outcome = classify(record, event, spec)
    if outcome is not FoldOutcome.ACCEPTED:
        return outcome
    stored = normalise_event(event, spec.max_query_terms)
    reconcile_aggregates(record, spec)
    if record.event_count == 0:
        record.first_event_ms = record.last_event_ms = stored.ts_ms
    else:
        record.first_event_ms = min(record.first_event_ms, stored.ts_ms)
        record.last_event_ms = max(record.last_event_ms, stored.ts_ms)
    record.event_count += 1
    add_to_aggregates(record.aggregates, stored, spec, record.last_event_ms)
    _add_to_window(record, stored, spec, evicted)
    return outcome


def _add_to_window(record: UserState, event: StateEvent, spec: StateSpec, evicted: list[StateEvent] | None) -> None:
    """Insert into the recent window in event order; what falls out is remembered for deduplication."""
    bisect.insort(record.recent, event, key=event_order_key)
    while len(record.recent) > spec.recent_window:
        oldest = record.recent.pop(0)
        if evicted is not None:
            evicted.append(oldest)
        bisect.insort(record.evicted_ids, (oldest.ts_ms, oldest.event_id_hash))
    # Ids older than the lateness horizon are not needed: such events are rejected as too late anyway.
    horizon = record.last_event_ms - spec.allowed_lateness_ms
    keep_from = bisect.bisect_left(record.evicted_ids, (horizon, -(2**63)))
    keep_from = max(keep_from, len(record.evicted_ids) - spec.dedupe_ids)
    if keep_from:
        del record.evicted_ids[:keep_from]
