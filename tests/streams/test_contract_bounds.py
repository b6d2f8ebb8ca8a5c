"""Every event the decoder accepts, at the contract's bounds and in any number, can be folded, stored and read back.

Events are built as producers send them (contract events through the wire encoding and the decoder), converted as
the worker converts them and folded into one user's record; the record must survive the codec's round trip.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from state.aggregates import profile_aggregates
from state.codec import decode_state, encode_state
from state.events import EventType, StateEvent
from state.fold import FoldOutcome, fold_event
from state.layout import MAX_STORED_AMOUNT
from state.record import UserState
from state.spec import StateSpec
from streams.bridge import to_state_event
from streams.contract.decoder import Rejection, decode_event
from streams.contract.events import (
    MAX_FUTURE_SKEW_MS,
    MAX_ID_CHARS,
    MAX_PRICE,
    MAX_QUANTITY,
    MAX_TEXT_CHARS,
    MIN_TS_MS,
    BrowseEvent,
    CommonFields,
    Event,
    PurchaseEvent,
    SearchEvent,
    encode_event,
)

NOW_MS = 1_767_225_600_000
SPEC = StateSpec()

# Text a producer may send: any Unicode but lone surrogates (which hypothesis never draws), at least one
# non-space character, up to the field's longest; the longest and shortest are drawn often.
ids = st.one_of(
    st.just("x" * MAX_ID_CHARS),
    st.just("\U0001f600" * MAX_ID_CHARS),
    st.text(min_size=1, max_size=MAX_ID_CHARS).filter(str.strip),
)
queries = st.one_of(
    st.just("q " * (MAX_TEXT_CHARS // 2)),
    st.text(min_size=1, max_size=MAX_TEXT_CHARS).filter(str.strip),
)
quantities = st.one_of(st.just(MAX_QUANTITY), st.just(1), st.integers(1, MAX_QUANTITY))
prices = st.one_of(
    st.just(float(MAX_PRICE)),
    st.just(MAX_PRICE - 0.0005),  # rounds up to the highest price in thousandths
    st.just(0.0),
    st.floats(0.0, MAX_PRICE, allow_nan=False),
)


@st.composite
def user_events(draw: st.DrawFn) -> list[Event]:
    """One user's events, all within the allowed lateness of each other, at the low or the high end of event time:
    from MIN_TS_MS up, or from the future-skew edge down."""
    low_end = draw(st.booleans())
    n = draw(st.integers(1, 120))
    user_id = draw(ids)
    offsets = draw(st.lists(st.one_of(st.just(0), st.integers(0, SPEC.allowed_lateness_ms)), min_size=n, max_size=n))
    purchase_share = draw(st.sampled_from([1.0, 0.5]))
    events: list[Event] = []
    for i, offset in enumerate(offsets):
        ts_ms = MIN_TS_MS + offset if low_end else NOW_MS + MAX_FUTURE_SKEW_MS - offset
        common: CommonFields = {
            "event_id": f"{i}-{draw(ids)}"[:MAX_ID_CHARS],
            "user_id": user_id,
            "ts_ms": ts_ms,
            "session_id": draw(st.none() | ids),
        }
        kind = draw(st.floats(0, 1))
        if kind < purchase_share:
            events.append(
                PurchaseEvent(
                    **common,
                    item_id=draw(ids),
                    category=draw(st.none() | ids),
                    quantity=draw(quantities),
                    price=draw(prices),
                    currency="XAU",
                )
            )
        elif kind < (1 + purchase_share) / 2:
            events.append(SearchEvent(**common, query=draw(queries)))
        else:
            events.append(BrowseEvent(**common, item_id=draw(ids), category=draw(st.none() | ids)))
    return events


def _through_the_wire(event: Event) -> Event:
    decoded = decode_event(
        encode_event(event), event.user_id.encode(), topic_type=event.type, require_key=True, now_ms=NOW_MS
    )
    assert not isinstance(decoded, Rejection), decoded
    return decoded


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(user_events())
def test_any_accepted_events_fold_into_a_record_that_round_trips(events: list[Event]) -> None:
    record = UserState.new()
    spend_milli = 0
    for event in events:
        stored = to_state_event(_through_the_wire(event), SPEC.max_query_terms)
        assert fold_event(record, stored, SPEC) is FoldOutcome.ACCEPTED
        if stored.type_code == EventType.PURCHASE:
            spend_milli += stored.spend_milli
    data = encode_state(record)
    decoded = decode_state(data)
    assert decoded == record
    assert encode_state(decoded) == data
    aggregates = profile_aggregates(decoded, SPEC)
    # Every event is within a day of the newest, so within the 30-day spend window: the spend is the exact sum,
    # saturated at what the record holds.
    assert aggregates == profile_aggregates(record, SPEC)
    assert aggregates["purchase_spend_30d"] == min(spend_milli, MAX_STORED_AMOUNT) / 1000


def test_many_purchases_at_the_bounds_saturate_instead_of_breaking_the_record() -> None:
    record = UserState.new()
    ts_ms = NOW_MS + MAX_FUTURE_SKEW_MS
    biggest = PurchaseEvent(
        event_id="e", user_id="u", ts_ms=ts_ms, item_id="i", quantity=MAX_QUANTITY, price=MAX_PRICE, currency="XAU"
    )
    stored = to_state_event(_through_the_wire(biggest), SPEC.max_query_terms)
    assert stored.spend_milli == 10**18
    # 2,000 * 1e18 thousandths: past the cap (2**62), and unsaturated past what a 10-byte varint holds (2**70).
    for i in range(2_000):
        fold_event(record, StateEvent(i, EventType.PURCHASE, ts_ms, 1, 0, (), stored.quantity, stored.price), SPEC)
    assert profile_aggregates(record, SPEC)["purchase_spend_30d"] == MAX_STORED_AMOUNT / 1000
    assert decode_state(encode_state(record)) == record
