"""Input event contract, version 1: the typed event classes and their JSON encoding.

The wire format is the one in the design card (field ``ts`` in milliseconds); in Python every timestamp
carries its unit in the name (``ts_ms``). Decoding lives in :mod:`streams.contract.decoder`, the only place that turns
bytes from Kafka into these classes.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Literal, TypedDict

SCHEMA_VERSION = 1
EventType = Literal["browse", "search", "purchase"]
EVENT_TYPES: tuple[EventType, ...] = ("browse", "search", "purchase")

# The bounds of contract v1, in one place: the decoder checks them, streams/contract/schemas/event-v1.schema.json states
# them (a test keeps the two in agreement) and the README's contract table quotes them.

MAX_EVENT_BYTES = 64 * 1024
"""Largest message value: far above any real event, far below Kafka's record limits."""
MAX_JSON_DEPTH = 32
"""Deepest nesting of arrays and objects (the event object itself is depth 1). Producers may add fields of their
own, so some nesting is allowed; a fixed limit, rather than the interpreter's recursion limit, makes the verdict
the same in the producer SDK and in the worker, whatever their stack depth."""
MAX_ID_CHARS = 256
"""Longest ``event_id``, ``user_id``, ``session_id``, ``item_id``, ``category`` (Unicode code points)."""
MAX_TEXT_CHARS = 1024
"""Longest search ``query`` (code points)."""
CURRENCY_CHARS = 3
"""``currency`` is an ISO 4217 alphabetic code: three upper-case ASCII letters."""
MIN_TS_MS = 946_684_800_000
"""2000-01-01T00:00Z. Event times outside [2000-01-01, 2100-01-01) are taken for unit mistakes (seconds or
microseconds)."""
MAX_TS_MS = 4_102_444_800_000
"""2100-01-01T00:00Z, exclusive."""
MAX_FUTURE_SKEW_MS = 10 * 60 * 1000
"""How far ahead of the checking clock (the worker's, or the producer SDK's) an event time may be. An accepted
event from the future moves its user's event-time clock forward, and every later correct event then counts as
that much late: the skew must stay well below the allowed lateness (one hour by default, ``StateSpec``), where
ten minutes still leaves fifty for events that are genuinely late. Ten rather than five minutes because the
producer's clock and the worker's differ: the SDK accepts by its own clock what the worker judges by another."""
MAX_QUANTITY = 1_000_000
"""Most units of one item in one purchase: generous for any shop, and small enough that one purchase's spend is a
64-bit integer (see ``MAX_PRICE``)."""
MAX_PRICE = 1_000_000_000
"""Highest unit price in currency units (a billion, enough for houses in currencies of small unit value). State
keeps prices in thousandths, so a purchase spends at most ``MAX_QUANTITY * MAX_PRICE * 1000`` = 1e18 thousandths,
below 2**60: one event's spend is a signed 64-bit integer, and the state saturates sums of many (see
``state.layout.MAX_STORED_AMOUNT``)."""


class CommonFields(TypedDict):
    """The fields every event type shares, for building events of any type from one dict."""

    event_id: str
    user_id: str
    ts_ms: int
    session_id: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class BaseEvent:
    """Fields every event carries."""

    event_id: str
    user_id: str
    ts_ms: int
    session_id: str | None = None

    @property
    def type(self) -> EventType:
        """The event type, which is also the suffix of its topic."""
        raise NotImplementedError


@dataclass(frozen=True, slots=True, kw_only=True)
class BrowseEvent(BaseEvent):
    """A user looked at an item."""

    item_id: str
    category: str | None = None
    request_id: str | None = None
    """The recommendation request this browse came from (a click on an impression), when it did."""

    @property
    def type(self) -> EventType:
        return "browse"


@dataclass(frozen=True, slots=True, kw_only=True)
class SearchEvent(BaseEvent):
    """A user searched; the raw query is used for features and never stored in state."""

    query: str

    @property
    def type(self) -> EventType:
        return "search"


@dataclass(frozen=True, slots=True, kw_only=True)
class PurchaseEvent(BaseEvent):
    """A user bought ``quantity`` units of an item at unit ``price`` in ``currency``.

    ``price`` and ``currency`` are absent together (``None``) for free items and for producers that do not know
    them; such a purchase spends nothing.
    """

    item_id: str
    quantity: int
    price: float | None = None
    currency: str | None = None
    category: str | None = None
    request_id: str | None = None
    """The recommendation request this purchase came from (a click on an impression), when it did."""

    @property
    def type(self) -> EventType:
        return "purchase"


Event = BrowseEvent | SearchEvent | PurchaseEvent


def new_event_id() -> str:
    """A fresh random event id (UUID4), the form the contract recommends."""
    return str(uuid.uuid4())


def event_to_dict(event: Event) -> dict[str, object]:
    """The contract-v1 JSON object of an event, optional fields left out when unset."""
    out: dict[str, object] = {
        "schema": SCHEMA_VERSION,
        "event_id": event.event_id,
        "user_id": event.user_id,
        "type": event.type,
        "ts": event.ts_ms,
    }
    if event.session_id is not None:
        out["session_id"] = event.session_id
    if isinstance(event, SearchEvent):
        out["query"] = event.query
    else:
        out["item_id"] = event.item_id
        if event.category is not None:
            out["category"] = event.category
        if event.request_id is not None:
            out["request_id"] = event.request_id
    if isinstance(event, PurchaseEvent):
        out["quantity"] = event.quantity
        if event.price is not None:
            out["price"] = event.price
        if event.currency is not None:
            out["currency"] = event.currency
    return out


def encode_event(event: Event) -> bytes:
    """The UTF-8 JSON bytes of an event, as producers put them on the wire."""
    return json.dumps(event_to_dict(event), separators=(",", ":"), ensure_ascii=False).encode()
