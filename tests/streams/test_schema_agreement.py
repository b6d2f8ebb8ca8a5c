"""The event JSON Schema and the decoder give the same verdict on documents with literal nulls and with the fields of
another event type: null counts as absent for an optional field, and a field an event type does not read is ignored.

The documents are written as JSON with their nulls (the bounds test in test_decoder.py leaves None out instead).
What the schema cannot state (integer literals, lone surrogates, the clock, the message key) is not varied here.
"""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import jsonschema  # type: ignore[import-untyped]
import pytest

from streams.contract.decoder import Rejection, decode_event

SCHEMA_DIR = Path(__file__).parents[2] / "streams" / "contract" / "schemas"
SCHEMA = json.loads((SCHEMA_DIR / "event-v1.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
TS = 1_767_225_600_000
ABSENT = object()
"""A field left out of the document."""

BASE: dict[str, dict[str, object]] = {
    "browse": {"schema": 1, "event_id": "e1", "user_id": "u1", "type": "browse", "ts": TS, "item_id": "i1"},
    "search": {"schema": 1, "event_id": "e1", "user_id": "u1", "type": "search", "ts": TS, "query": "red shoes"},
    "purchase": {
        "schema": 1,
        "event_id": "e1",
        "user_id": "u1",
        "type": "purchase",
        "ts": TS,
        "item_id": "i1",
        "quantity": 2,
        "price": 9.5,
        "currency": "EUR",
    },
}


def _document(event_type: str, **changes: object) -> dict[str, object]:
    document = {**BASE[event_type], **changes}
    return {name: value for name, value in document.items() if value is not ABSENT}


def _verdicts(document: dict[str, object]) -> tuple[bool, bool]:
    """(the decoder accepts it, the schema accepts it)."""
    decoded = decode_event(json.dumps(document, allow_nan=False).encode())
    return not isinstance(decoded, Rejection), VALIDATOR.is_valid(document)


def _null(field: str) -> dict[str, object]:
    return {field: None}


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


# Each case: the event type, the changes to its valid document, and whether the result is a valid event.
CASES: list[tuple[str, str, dict[str, object], bool]] = [
    # Null counts as absent for every optional field.
    ("free-purchase-nulls", "purchase", {"price": None, "currency": None}, True),
    ("purchase-null-price-no-currency", "purchase", {"price": None, "currency": ABSENT}, True),
    ("purchase-null-currency-no-price", "purchase", {"price": ABSENT, "currency": None}, True),
    ("purchase-price-null-currency", "purchase", {"currency": None}, False),
    ("purchase-null-price-currency", "purchase", {"price": None}, False),
    ("purchase-no-price-currency", "purchase", {"price": ABSENT}, False),
    ("purchase-price-no-currency", "purchase", {"currency": ABSENT}, False),
    *(
        (f"{event_type}-null-session", event_type, _null("session_id"), True)
        for event_type in ("browse", "search", "purchase")
    ),
    *(
        (f"{event_type}-null-{field}", event_type, _null(field), True)
        for event_type in ("browse", "purchase")
        for field in ("category", "request_id")
    ),
    (
        "purchase-every-optional-null",
        "purchase",
        {"session_id": None, "category": None, "request_id": None, "price": None, "currency": None},
        True,
    ),
    # Null is no value for a required field.
    *(
        (f"{event_type}-null-{field}", event_type, _null(field), False)
        for event_type, document in BASE.items()
        for field in document
        if field not in {"price", "currency"}
    ),
    # A field of another event type is ignored, as an unknown field is.
    ("browse-currency-lower", "browse", {"currency": "eur"}, True),
    ("browse-quantity-string", "browse", {"quantity": "x"}, True),
    ("browse-price-alone", "browse", {"price": 5}, True),
    ("browse-currency-alone", "browse", {"currency": "EUR"}, True),
    ("browse-query-empty", "browse", {"query": ""}, True),
    ("search-category-empty", "search", {"category": ""}, True),
    ("search-item-number", "search", {"item_id": 7}, True),
    ("search-request-blank", "search", {"request_id": " "}, True),
    ("search-quantity-zero", "search", {"quantity": 0}, True),
    ("search-price-negative", "search", {"price": -1, "currency": None}, True),
    ("purchase-query-empty", "purchase", {"query": ""}, True),
    # The fields an event type reads are checked.
    ("browse-category-empty", "browse", {"category": ""}, False),
    ("browse-request-number", "browse", {"request_id": 7}, False),
    ("purchase-category-blank", "purchase", {"category": " "}, False),
    ("purchase-quantity-string", "purchase", {"quantity": "x"}, False),
    ("purchase-currency-lower", "purchase", {"currency": "eur"}, False),
    ("purchase-price-string", "purchase", {"price": "9.5"}, False),
    ("search-no-query", "search", {"query": ABSENT}, False),
    ("browse-no-item", "browse", {"item_id": ABSENT}, False),
    ("session-empty", "search", {"session_id": ""}, False),
]


@pytest.mark.parametrize(("name", "event_type", "changes", "valid"), CASES, ids=[case[0] for case in CASES])
def test_schema_and_decoder_agree_on_nulls_and_other_types_fields(
    name: str, event_type: str, changes: dict[str, object], valid: bool
) -> None:
    assert _verdicts(_document(event_type, **changes)) == (valid, valid), name


FIELDS = ("session_id", "item_id", "category", "request_id", "query", "quantity", "price", "currency")
VALUES: list[object] = [ABSENT, None, "", " ", "x", "EUR", "eur", 0, 1, -1, 2.5, True, [], {}]
"""Values of every JSON kind, and the strings and numbers at which the fields' rules differ."""


@pytest.mark.parametrize("event_type", list(BASE))
def test_schema_and_decoder_agree_on_any_one_field_of_any_value(event_type: str) -> None:
    disagreements = [
        (field, value)
        for field, value in itertools.product(FIELDS, VALUES)
        if len(set(_verdicts(_document(event_type, **{field: value})))) != 1
    ]
    assert disagreements == []


@pytest.mark.parametrize("event_type", list(BASE))
def test_schema_and_decoder_agree_on_any_price_and_currency(event_type: str) -> None:
    disagreements = [
        (price, currency)
        for price, currency in itertools.product(VALUES, repeat=2)
        if len(set(_verdicts(_document(event_type, price=price, currency=currency)))) != 1
    ]
    assert disagreements == []


def _patterns(node: object) -> list[str]:
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in ([v] if k == "pattern" else _patterns(v))]
    return [p for v in node for p in _patterns(v)] if isinstance(node, list) else []


NOT_BLANK = sorted(
    {
        p
        for name in ("event-v1", "impression-v1")
        for p in _patterns(json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text()))
        if p.startswith("[^")
    }
)


@pytest.mark.parametrize("pattern", NOT_BLANK)
def test_the_not_blank_pattern_means_what_the_decoders_strip_means_in_any_regex_engine(pattern: str) -> None:
    # The decoder refuses a string that str.strip() empties; "\\S" would differ by engine (ECMA-262's, which JSON
    # Schema names, counts U+FEFF as a space and U+001C-U+001F and U+0085 as not), so the class is spelled out
    # with escapes every engine reads alike. Every code point but the surrogates:
    compiled = re.compile(pattern)
    differ = [
        hex(c)
        for c in itertools.chain(range(0xD800), range(0xE000, 0x110000))
        if bool(compiled.search(chr(c))) == chr(c).isspace()
    ]
    assert differ == []
    assert compiled.search("\ufeff") and not compiled.search(" \x1c\x85\u3000")
