"""Translations between the contract's events and what the model and the state rooms keep of them.

The model and the state never see raw strings: ids, categories and search terms are reduced to stable 64-bit
hashes here, once per event, so the raw query never reaches the state store.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from models.features import EventInput, query_term_hashes, stable_hash64
from state.events import StateEvent, event_order_key, normalise_event
from streams.contract.events import EVENT_TYPES, Event, PurchaseEvent, SearchEvent

_catalogue_hash = functools.lru_cache(maxsize=1 << 16)(stable_hash64)
"""`stable_hash64` of item ids and categories, which recur across events and users (a catalogue, not personal
data); event ids are unique and query text is never kept, so those are hashed afresh each time. Bounded: at
most 65,536 ids of at most ``MAX_ID_CHARS`` (256) characters, whatever producers send."""

TYPE_CODES = {name: code for code, name in enumerate(EVENT_TYPES)}
"""The contract's type names to the codes state stores and the model embeds (the same order in all three rooms:
``tests/test_event_types.py`` holds them equal, since models/ and state/ may not import the contract)."""


def to_state_event(event: Event, max_query_terms: int) -> StateEvent:
    """What state keeps of a contract event: hashes and numbers only, normalised as the codec stores them,
    so a live event and the same event rebuilt from the stored window give the model identical input."""
    item_hash = category_hash = quantity = 0
    price = 0.0
    terms: tuple[int, ...] = ()
    if isinstance(event, SearchEvent):
        terms = query_term_hashes(event.query, max_terms=max_query_terms)
    else:
        item_hash = _catalogue_hash(event.item_id)
        category_hash = _catalogue_hash(event.category) if event.category else 0
        if isinstance(event, PurchaseEvent):
            quantity = event.quantity
            price = event.price or 0.0  # absent price: no spend
    event_view = StateEvent(
        event_id_hash=stable_hash64(event.event_id),
        type_code=TYPE_CODES[event.type],
        ts_ms=event.ts_ms,
        item_hash=item_hash,
        category_hash=category_hash,
        query_terms=terms,
        quantity=quantity,
        price=price,
    )
    return normalise_event(event_view, max_query_terms)


def to_model_input(event: StateEvent) -> EventInput:
    """The model's view of a stored event; the same function serves live events and window rebuilds."""
    return EventInput(
        type_code=event.type_code,
        ts_ms=event.ts_ms,
        item_hash=event.item_hash,
        category_hash=event.category_hash,
        query_terms=event.query_terms,
        price=event.price,
        quantity=event.quantity,
    )


def model_sequence(events: Iterable[Event], max_query_terms: int) -> list[EventInput]:
    """One user's events as the worker folds them: converted as above and in event order, ties broken by the
    event id's hash. Offline training and evaluation use this so their profiles equal the stream's."""
    stored = sorted((to_state_event(e, max_query_terms) for e in events), key=event_order_key)
    return [to_model_input(e) for e in stored]
