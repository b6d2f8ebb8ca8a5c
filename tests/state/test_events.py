"""StateEvent validation and normalisation."""

from __future__ import annotations

import math

import pytest

from state.events import StateEvent, hash_hex, normalise_event


@pytest.mark.parametrize(
    "kwargs",
    [
        {"type_code": 3},
        {"event_id_hash": 2**63},
        {"item_hash": -(2**63) - 1},
        {"query_terms": (2**64,)},
        {"price": math.nan},
        {"price": math.inf},
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
