"""What state keeps of one accepted event: hashes and numbers only, never raw text."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace
from enum import IntEnum

from state.layout import MAX_STORED_AMOUNT

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
PRICE_SCALE = 1000
"""Prices are kept to a thousandth of the currency unit (three decimals cover every ISO 4217 currency)."""
MAX_STORED_PRICE = 2**50 / PRICE_SCALE
"""The highest unit price state keeps (about 1.1e12). Up to 2**50 thousandths a float price and its integer
thousandths convert into each other exactly (the rounding errors stay below a quarter of a thousandth), so a
normalised price survives the codec's round trip unchanged."""


class EventType(IntEnum):
    """Event type codes, equal to the index of the type name in the contract's type list."""

    BROWSE = 0
    SEARCH = 1
    PURCHASE = 2


EVENT_TYPE_NAMES: tuple[str, ...] = tuple(t.name.lower() for t in EventType)


@dataclass(frozen=True, slots=True)
class StateEvent:
    """One accepted event as state stores it.

    Hashes are signed 64-bit integers, 0 meaning absent. ``price`` is the unit price; spend is
    ``quantity * price``. Construction validates ranges so that the codec can trust every stored event:
    ``quantity`` is 0 to `MAX_STORED_AMOUNT`, ``price`` 0 to `MAX_STORED_PRICE`.
    """

    event_id_hash: int
    type_code: int
    ts_ms: int
    item_hash: int = 0
    category_hash: int = 0
    query_terms: tuple[int, ...] = ()
    quantity: int = 0
    price: float = 0.0
    wire: tuple[int, bytes, int, int] | None = field(default=None, init=False, repr=False, compare=False)
    """The codec's bytes of this event (:mod:`state.codec`), made at its first encode and kept, since an event in a
    user's window is written again at every update of that user: (the previous event's time, the bytes with the
    time gap from it, where the gap starts, its length). Only the gap depends on a neighbour; when the
    predecessor changes (an eviction, an out-of-order insert) the gap alone is written anew."""

    def __post_init__(self) -> None:
        # Runs for every event the worker accepts: the common case is checked in one expression.
        if self.type_code not in _TYPE_CODES:
            raise ValueError(f"type_code must be one of {sorted(_TYPE_CODES)}, got {self.type_code}")
        if not (
            INT64_MIN <= self.event_id_hash <= INT64_MAX
            and INT64_MIN <= self.item_hash <= INT64_MAX
            and INT64_MIN <= self.category_hash <= INT64_MAX
            and 0 <= self.quantity <= MAX_STORED_AMOUNT
            and 0.0 <= self.price <= MAX_STORED_PRICE  # also false for NaN
        ):
            for name in ("event_id_hash", "item_hash", "category_hash"):
                _check_int64(name, getattr(self, name))
            if not 0 <= self.quantity <= MAX_STORED_AMOUNT:
                raise ValueError(f"quantity must be from 0 to {MAX_STORED_AMOUNT}")
            raise ValueError(f"price must be a number from 0 to {MAX_STORED_PRICE}")
        for term in self.query_terms:
            _check_int64("query_terms", term)

    @property
    def price_milli(self) -> int:
        """The unit price in thousandths of the currency unit, rounded half to even."""
        return round(self.price * PRICE_SCALE)

    @property
    def spend_milli(self) -> int:
        """What this event spent, in thousandths of the currency unit (exact integer arithmetic)."""
        return self.quantity * self.price_milli


_TYPE_CODES = frozenset(int(t) for t in EventType)


def _check_int64(name: str, value: int) -> None:
    if not INT64_MIN <= value <= INT64_MAX:
        raise ValueError(f"{name} must be a signed 64-bit integer")


def normalise_event(event: StateEvent, max_query_terms: int) -> StateEvent:
    """Return the event exactly as state stores it: at most `max_query_terms` terms, price to 1/1000.

    Storing the normalised form makes the codec lossless: a decoded record equals the record that was encoded.
    """
    terms = event.query_terms[:max_query_terms]
    price = event.price_milli / PRICE_SCALE
    if terms == event.query_terms and price == event.price:
        return event
    return replace(event, query_terms=terms, price=price)


def event_order_key(event: StateEvent) -> tuple[int, int]:
    """Total order of events: event time, then id hash, so that ties never depend on arrival order."""
    return (event.ts_ms, event.event_id_hash)


@functools.lru_cache(maxsize=1 << 16)
def hash_hex(value: int) -> str:
    """A signed 64-bit hash as 16 lower-case hex digits of its unsigned two's-complement form."""
    return f"{value & 0xFFFF_FFFF_FFFF_FFFF:016x}"
