"""Events as the model sees them: hashes and numbers only, built without torch.

`EventInput` is what `streams/` builds from a contract event and what it rebuilds from the per-user window kept by
`state/`; no raw string (item id, category, query text) survives in it. The hashing here is part of the model
contract: a change would orphan every stored window and every checkpoint vocabulary.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from models.errors import FeatureError

EVENT_TYPES: tuple[str, ...] = ("browse", "search", "purchase")
"""Event type names; an event's `type_code` is its index here."""

TYPE_CODES: Mapping[str, int] = {name: code for code, name in enumerate(EVENT_TYPES)}
ITEM_BEARING_TYPES: frozenset[int] = frozenset({TYPE_CODES["browse"], TYPE_CODES["purchase"]})

_TOKEN_RE = re.compile(r"\w+")


def stable_hash64(text: str) -> int:
    """Hash `text` to a signed 64-bit integer that is identical in every process and on every machine.

    blake2b with an 8-byte digest over the UTF-8 bytes, read as a little-endian signed integer, so it fits
    torch.int64 and numpy.int64. 0 is reserved for "absent": a digest of 0 is mapped to 1.
    """
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    value = int.from_bytes(digest, "little", signed=True)
    return value if value != 0 else 1


def query_term_hashes(query: str, max_terms: int = 8) -> tuple[int, ...]:
    """Normalise a search query (NFKC, case-folded), split it into word tokens and hash each distinct token.

    The first `max_terms` distinct tokens are kept, in order of appearance. The raw text is not kept anywhere.
    """
    normalised = unicodedata.normalize("NFKC", query).casefold()
    terms: list[int] = []
    seen: set[str] = set()
    for token in _TOKEN_RE.findall(normalised):
        if token in seen:
            continue
        seen.add(token)
        terms.append(stable_hash64(token))
        if len(terms) >= max_terms:
            break
    return tuple(terms)


class EventFields(Protocol):
    """What the model reads of an event: `EventInput`, or any object with the same fields and meanings.

    The worker hands the model the events it stores (`state.events.StateEvent`, the same hashes and numbers) as
    they are: a copy of each into an `EventInput` cost 1.5 to 3 % of a drain. Validation is the stored event's own.
    """

    @property
    def type_code(self) -> int: ...

    @property
    def ts_ms(self) -> int: ...

    @property
    def item_hash(self) -> int: ...

    @property
    def category_hash(self) -> int: ...

    @property
    def query_terms(self) -> tuple[int, ...]: ...

    @property
    def price(self) -> float: ...

    @property
    def quantity(self) -> int: ...


@dataclass(frozen=True, slots=True)
class EventInput:
    """What the model sees of one event: a type code, its time, hashes and numbers (no raw strings)."""

    type_code: int
    ts_ms: int
    item_hash: int = 0  # stable_hash64(item_id), 0 when the event has no item
    category_hash: int = 0  # stable_hash64(category), 0 when absent
    query_terms: tuple[int, ...] = ()  # query_term_hashes(query) for searches
    price: float = 0.0  # unit price for purchases, else 0
    quantity: int = 0  # purchased quantity, else 0

    def __post_init__(self) -> None:
        if not 0 <= self.type_code < len(EVENT_TYPES):
            raise FeatureError(f"type_code must be in 0..{len(EVENT_TYPES) - 1}, got {self.type_code!r}")

    @property
    def has_item(self) -> bool:
        """True for browse/purchase events that name an item."""
        return self.item_hash != 0 and self.type_code in ITEM_BEARING_TYPES


def make_event_input(
    event_type: str,
    ts_ms: int,
    *,
    item_id: str | None = None,
    category: str | None = None,
    query: str | None = None,
    price: float | None = None,
    quantity: int | None = None,
    max_query_terms: int = 8,
) -> EventInput:
    """Build an `EventInput` from the fields of a contract event, hashing the strings.

    Price and quantity are kept only for purchases (the contract defines them only there).
    """
    code = TYPE_CODES.get(event_type)
    if code is None:
        raise FeatureError(f"unknown event type {event_type!r}; expected one of {EVENT_TYPES}")
    is_purchase = code == TYPE_CODES["purchase"]
    return EventInput(
        type_code=code,
        ts_ms=int(ts_ms),
        item_hash=stable_hash64(item_id) if item_id else 0,
        category_hash=stable_hash64(category) if category else 0,
        query_terms=query_term_hashes(query, max_query_terms) if query else (),
        price=float(price) if is_purchase and price is not None else 0.0,
        quantity=int(quantity) if is_purchase and quantity is not None else 0,
    )
