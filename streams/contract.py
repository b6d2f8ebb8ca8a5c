"""Input event contract, version 1: the typed event classes and their JSON encoding.

The wire format is the one in the design card (field ``ts`` in milliseconds); in Python every timestamp
carries its unit in the name (``ts_ms``). Decoding lives in :mod:`streams.decoder`, the only place that turns
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
    """A user bought ``quantity`` units of an item at unit ``price`` in ``currency``."""

    item_id: str
    quantity: int
    price: float
    currency: str
    category: str | None = None

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
    if isinstance(event, PurchaseEvent):
        out["quantity"] = event.quantity
        out["price"] = event.price
        out["currency"] = event.currency
    return out


def encode_event(event: Event) -> bytes:
    """The UTF-8 JSON bytes of an event, as producers put them on the wire."""
    return json.dumps(event_to_dict(event), separators=(",", ":"), ensure_ascii=False).encode()
