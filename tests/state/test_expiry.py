"""Event-time idle expiry."""

from __future__ import annotations

from state.events import StateEvent
from state.expiry import expires_at_ms, is_expired
from state.record import UserState
from state.spec import StateSpec
from tests.state.strategies import T0_MS, fold_all

SPEC = StateSpec(user_ttl_ms=1_000)


def test_expires_only_after_the_ttl_of_event_time() -> None:
    record = fold_all([StateEvent(1, 0, T0_MS)], SPEC)
    assert expires_at_ms(record, SPEC) == T0_MS + 1_000
    assert not is_expired(record, T0_MS + 1_000, SPEC)
    assert is_expired(record, T0_MS + 1_001, SPEC)
    assert not is_expired(record, T0_MS - 5_000, SPEC)  # a watermark behind the user never expires it


def test_a_record_without_events_is_expired() -> None:
    assert is_expired(UserState.new(), 0, SPEC)
