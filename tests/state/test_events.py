"""StateEvent validation and normalisation."""

from __future__ import annotations

import math

import pytest

from state.events import MAX_STORED_PRICE, PRICE_SCALE, StateEvent, hash_hex, normalise_event
from state.layout import MAX_STORED_AMOUNT


@pytest.mark.parametrize(
    "kwargs",
    [
        {"type_code": 3},
        {"event_id_hash": 2**63},
        {"item_hash": -(2**63) - 1},
        {"query_terms": (2**64,)},
        {"price": math.nan},
        {"price": math.inf},
        {"price": -0.001},
        {"price": math.nextafter(MAX_STORED_PRICE, math.inf)},
        {"price": 1e306},
        {"quantity": -1},
        {"quantity": MAX_STORED_AMOUNT + 1},
        {"quantity": 2**70},
    ],
)
def test_invalid_events_are_rejected(kwargs: dict[str, object]) -> None:
    fields: dict[str, object] = {"event_id_hash": 1, "type_code": 0, "ts_ms": 0, **kwargs}
    with pytest.raises(ValueError):
        StateEvent(**fields)  # type: ignore[arg-type]


def test_normalise_keeps_stored_form() -> None:
    event = StateEvent(1, 2, 0, quantity=3, price=19.9999)
    stored = normalise_event(event, max_query_terms=4)
    assert stored.price == 20.0 and stored.spend_milli == 60_000
    assert normalise_event(stored, max_query_terms=4) is stored


def test_hash_hex_is_unsigned_and_fixed_width() -> None:
    assert hash_hex(1) == "0000000000000001"
    assert hash_hex(-1) == "ffffffffffffffff"
    assert hash_hex(-(2**63)) == "8000000000000000"


def test_prices_up_to_the_limit_survive_normalisation_exactly() -> None:
    for price in (MAX_STORED_PRICE, MAX_STORED_PRICE - 0.0004, 1e9 + 0.0005, 0.0005, 123_456_789.987):
        stored = normalise_event(StateEvent(1, 2, 0, quantity=MAX_STORED_AMOUNT, price=price), max_query_terms=4)
        assert stored.price_milli == round(price * PRICE_SCALE)
        # What the codec writes (the thousandths) gives back the same float price.
        assert stored.price_milli / PRICE_SCALE == stored.price
        assert normalise_event(stored, max_query_terms=4) is stored
