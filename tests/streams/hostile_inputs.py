"""Hostile input messages and the decoder's verdict on each: one table for the unit tests and for chaos suites.

Each row is a message value, key and topic type as a producer could send them, and the reason code the decoder
must reject it with, or ``None`` for a valid event that must be accepted (folded, not dead-lettered). The verdict
is the one ``decode_event(value, key, topic_type=..., require_key=True, now_ms=now_ms)`` gives, ``now_ms`` being
the clock the table was built for: build it just before sending, and the worker's clock agrees to well within
``MAX_FUTURE_SKEW_MS``. Every row has its own user, so rows do not affect one another's state.

Rows whose value is larger than a producer's default request limit (``deliverable`` false) are refused before
they reach the broker; a chaos suite expects a send error for them instead of a dead letter. The accepted row
``ts-min`` has an event time in the year 2000: its user is folded, and then idle far beyond any TTL, so the
worker's event-time expiry may remove it again.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from streams.contract.decoder import Reason
from streams.contract.events import (
    MAX_EVENT_BYTES,
    MAX_FUTURE_SKEW_MS,
    MAX_ID_CHARS,
    MAX_JSON_DEPTH,
    MAX_PRICE,
    MAX_QUANTITY,
    MAX_TEXT_CHARS,
    MIN_TS_MS,
)

PRODUCER_MAX_REQUEST_BYTES = 1_000_000
"""kafka-python's default ``max_request_size``: a larger value is refused by the producer itself."""

LONE_SURROGATE = "\\ud800"
"""The JSON escape of a lone high surrogate: valid JSON syntax, not valid Unicode."""

STRING_FIELDS = ("event_id", "user_id", "session_id", "item_id", "category", "query", "currency")
"""Every string field of the contract."""


@dataclass(frozen=True)
class HostileInput:
    """One message and the decoder's expected verdict (``reason`` None: a valid event, accepted)."""

    name: str
    value: bytes | None
    key: bytes | None
    topic_type: str
    reason: Reason | None

    @property
    def deliverable(self) -> bool:
        """Whether a producer with default settings can send the value at all."""
        return self.value is None or len(self.value) <= PRODUCER_MAX_REQUEST_BYTES


def _dumps(obj: object) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def hostile_inputs(now_ms: int, tag: str = "hostile") -> list[HostileInput]:
    """The table, with event times just before ``now_ms`` and user ids ``<tag>-<row name>``.

    Pass a fresh ``tag`` per run against a real broker, so that accepted rows are not dropped as duplicates of a
    previous run's events.
    """
    rows: list[HostileInput] = []
    ts = now_ms - 60_000

    def event(name: str, topic_type: str = "purchase", **changes: object) -> dict[str, object]:
        """A valid event of `topic_type` for the row's own user, with `changes` (None removes a field)."""
        obj: dict[str, object] = {
            "schema": 1,
            "event_id": f"{tag}-{name}-event",
            "user_id": f"{tag}-{name}",
            "type": topic_type,
            "ts": ts,
            "session_id": f"{tag}-session",
        }
        if topic_type == "search":
            obj["query"] = "red shoes"
        else:
            obj["item_id"] = "item-42"
            obj["category"] = "books"
        if topic_type == "purchase":
            obj.update(quantity=2, price=9.5, currency="EUR")
        obj.update(changes)
        return {k: v for k, v in obj.items() if v is not None}

    def user_key(name: str) -> bytes:
        return f"{tag}-{name}".encode()

    def add(
        name: str,
        value: bytes | None,
        reason: Reason | None,
        *,
        key: bytes | Literal["own"] | None = "own",
        topic: str = "purchase",
    ) -> None:
        """A row; the key defaults to the row's own user id."""
        rows.append(HostileInput(name, value, user_key(name) if key == "own" else key, topic, reason))

    def add_event(name: str, reason: Reason | None, *, topic: str = "purchase", **changes: object) -> None:
        add(name, _dumps(event(name, topic, **changes)).encode(), reason, topic=topic)

    def add_raw(name: str, reason: Reason | None, edit: Callable[[str], str], topic: str = "purchase") -> None:
        """A valid event whose JSON text is then edited by hand (for what json.dumps cannot write)."""
        add(name, edit(_dumps(event(name, topic))).encode(), reason, topic=topic)

    def replace_value(field: str, literal: str) -> Callable[[str], str]:
        """Replace the value of `field` with a JSON literal, written as it is."""

        def edit(text: str) -> str:
            obj = json.loads(text)
            marker = "\x00MARKER\x00"
            obj[field] = marker
            return _dumps(obj).replace(_dumps(marker), literal)

        return edit

    def with_field(literal_pair: str) -> Callable[[str], str]:
        """Append `"key": value`, written as it is, to the object."""
        return lambda text: text[:-1] + "," + literal_pair + "}"

    valid = _dumps(event("template")).encode()

    # The transport: no value, no bytes, the wrong encoding.
    add("null-value", None, Reason.MISSING_FIELD)
    add("empty-bytes", b"", Reason.NOT_JSON)
    add("whitespace-only", b" \n\t ", Reason.NOT_JSON)
    add("bom-prefixed", b"\xef\xbb\xbf" + _dumps(event("bom-prefixed")).encode(), Reason.NOT_JSON)
    add("utf16", _dumps(event("utf16")).encode("utf-16"), Reason.NOT_UTF8)
    not_utf8: list[tuple[str, Callable[[bytes], bytes]]] = [
        ("invalid-utf8-in-value", lambda b: b.replace(b"books", b"b\xffoks")),
        ("invalid-utf8-json-key", lambda b: b[:-1] + b',"k\xff":1}'),
        ("utf8-encoded-surrogate", lambda b: b.replace(b"books", b"\xed\xa0\x80")),
        ("overlong-utf8", lambda b: b.replace(b"books", b"\xc0\xaf")),
    ]
    for name, edit_bytes in not_utf8:
        add(name, edit_bytes(_dumps(event(name)).encode()), Reason.NOT_UTF8)
    padded = _dumps(event("at-size-limit")).encode()
    add("at-size-limit", padded[:-1] + b" " * (MAX_EVENT_BYTES - len(padded)) + b"}", None)
    padded = _dumps(event("size-limit-plus-1")).encode()
    add("size-limit-plus-1", padded[:-1] + b" " * (MAX_EVENT_BYTES + 1 - len(padded)) + b"}", Reason.TOO_LARGE)
    add("ten-megabytes", b'{"x":"' + b"a" * 10_000_000 + b'"}', Reason.TOO_LARGE)

    # JSON syntax, and JSON that parsers read differently.
    add("truncated", valid[:-1], Reason.NOT_JSON)
    add("trailing-garbage", valid + b"x", Reason.NOT_JSON)
    add("two-objects", valid + valid, Reason.NOT_JSON)
    add("single-quotes", valid.replace(b'"', b"'"), Reason.NOT_JSON)
    add_raw("raw-control-char", Reason.NOT_JSON, lambda t: t.replace("books", "bo\x01oks"))
    add_raw("nan-literal", Reason.NOT_JSON, replace_value("price", "NaN"))
    add_raw("infinity-literal", Reason.NOT_JSON, replace_value("price", "Infinity"))
    add_raw("minus-infinity-literal", Reason.NOT_JSON, replace_value("ts", "-Infinity"))
    add_raw("nan-in-unknown-field", Reason.NOT_JSON, with_field('"x":NaN'))
    add_raw("duplicate-key", Reason.NOT_JSON, with_field('"user_id":"someone-else"'))
    add_raw("duplicate-key-nested", Reason.NOT_JSON, with_field('"x":{"a":1,"a":2}'))
    add("deep-array", b"[" * 4096 + b"]" * 4096, Reason.NOT_JSON)
    add("deep-object", b'{"a":' * 2000 + b"1" + b"}" * 2000, Reason.NOT_JSON)
    add("deep-unterminated", b'["' + b"[" * 5000, Reason.NOT_JSON)
    # Unterminated strings of escaped quotes behind more brackets than the depth limit: the depth check's string
    # pattern once rescanned the text from every quote (quadratic: half a minute for one such message).
    escaped_quotes = (MAX_EVENT_BYTES - 2 * MAX_JSON_DEPTH) // 2
    add("unterminated-escaped-quotes", b"{" * (MAX_JSON_DEPTH + 1) + b'"' + b'\\"' * escaped_quotes, Reason.NOT_JSON)
    add("unterminated-backslashes", b"[" * (MAX_JSON_DEPTH + 1) + b'"\\' * escaped_quotes, Reason.NOT_JSON)
    too_deep = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH  # with the event object: one level too many
    add_raw("deep-in-unknown-field", Reason.NOT_JSON, with_field(f'"x":{too_deep}'))
    at_limit = "[" * (MAX_JSON_DEPTH - 1) + "]" * (MAX_JSON_DEPTH - 1)
    add_raw("nesting-at-limit", None, with_field(f'"x":{at_limit}'))
    add_raw("brackets-in-strings", None, with_field('"x":"\\"' + "[{" * 100 + '","y":["]]]"]'))
    many_fields = event("many-unknown-fields") | {f"x{i}": i for i in range(3000)}
    add("many-unknown-fields", _dumps(many_fields).encode(), None)
    add("whitespace-around", b" \n" + _dumps(event("whitespace-around")).encode() + b"\n ", None)

    # Not an object at the top.
    add("json-array", b"[" + valid + b"]", Reason.NOT_OBJECT)
    add("json-null", b"null", Reason.NOT_OBJECT)
    add("json-string", b'"event"', Reason.NOT_OBJECT)
    add("json-number", b"42", Reason.NOT_OBJECT)
    add("json-true", b"true", Reason.NOT_OBJECT)

    # Numbers: types, literals and bounds.
    huge = "1" + "0" * 5000  # more digits than Python parses (4300)
    add_raw("ts-1e400", Reason.WRONG_TYPE, replace_value("ts", "1e400"))
    add_raw("ts-huge-int", Reason.TS_OUT_OF_RANGE, replace_value("ts", huge))
    add_raw("ts-negative-huge-int", Reason.TS_OUT_OF_RANGE, replace_value("ts", "-" + huge))
    add_raw("ts-float-literal", Reason.WRONG_TYPE, replace_value("ts", f"{ts}.0"))
    add_event("ts-bool", Reason.WRONG_TYPE, ts=True)
    add_event("ts-seconds", Reason.TS_OUT_OF_RANGE, ts=ts // 1000)
    add_event("ts-microseconds", Reason.TS_OUT_OF_RANGE, ts=ts * 1000)
    add_event("ts-min", None, ts=MIN_TS_MS)
    add_event("ts-before-min", Reason.TS_OUT_OF_RANGE, ts=MIN_TS_MS - 1)
    add_event("ts-future-skew-edge", None, ts=now_ms + MAX_FUTURE_SKEW_MS)
    add_event("ts-beyond-future-skew", Reason.TS_OUT_OF_RANGE, ts=now_ms + MAX_FUTURE_SKEW_MS + 1)
    add_event("ts-a-day-ahead", Reason.TS_OUT_OF_RANGE, ts=now_ms + 86_400_000)
    add_raw("quantity-huge-int", Reason.INVALID_VALUE, replace_value("quantity", huge))
    add_raw("huge-int-in-unknown-field", None, with_field(f'"x":{huge}'))
    add_event("quantity-2-pow-70", Reason.INVALID_VALUE, quantity=2**70)
    add_raw("quantity-exponent", Reason.WRONG_TYPE, replace_value("quantity", "1e3"))
    add_raw("quantity-float-literal", Reason.WRONG_TYPE, replace_value("quantity", "2.0"))
    add_event("quantity-bool", Reason.WRONG_TYPE, quantity=True)
    add_event("quantity-string", Reason.WRONG_TYPE, quantity="2")
    add_event("quantity-zero", Reason.INVALID_VALUE, quantity=0)
    add_event("quantity-negative", Reason.INVALID_VALUE, quantity=-1)
    add_event("quantity-max", None, quantity=MAX_QUANTITY)
    add_event("quantity-above-max", Reason.INVALID_VALUE, quantity=MAX_QUANTITY + 1)
    add_raw("price-1e400", Reason.INVALID_VALUE, replace_value("price", "1e400"))
    add_event("price-1e306", Reason.INVALID_VALUE, price=1e306)
    add_event("price-1e18", Reason.INVALID_VALUE, price=1e18)
    add_raw("price-huge-int", Reason.INVALID_VALUE, replace_value("price", huge))
    add_event("price-max", None, price=MAX_PRICE, quantity=MAX_QUANTITY)
    add_event("price-above-max", Reason.INVALID_VALUE, price=MAX_PRICE + 0.001)
    add_raw("price-negative-zero", None, replace_value("price", "-0.0"))
    add_event("price-negative", Reason.INVALID_VALUE, price=-0.01)
    add_raw("price-underflow", None, replace_value("price", "1e-400"))
    add_event("price-string", Reason.WRONG_TYPE, price="9.99")
    add_event("price-bool", Reason.WRONG_TYPE, price=False)
    add_event("schema-string", Reason.UNSUPPORTED_SCHEMA, schema="1")
    add_event("schema-bool", Reason.UNSUPPORTED_SCHEMA, schema=True)
    add_event("schema-2", Reason.UNSUPPORTED_SCHEMA, schema=2)

    # Strings: types, Unicode and lengths.
    for field in STRING_FIELDS:
        topic = "search" if field == "query" else "purchase"
        edit = replace_value(field, f'"{LONE_SURROGATE}x"')
        add_raw(f"lone-surrogate-{field.replace('_', '-')}", Reason.INVALID_VALUE, edit, topic)
    add_raw("lone-low-surrogate", Reason.INVALID_VALUE, replace_value("item_id", '"\\udc00"'))
    add_raw("reversed-surrogate-pair", Reason.INVALID_VALUE, replace_value("item_id", '"\\ude00\\ud83d"'))
    add_raw("lone-surrogate-currency-only", Reason.INVALID_VALUE, replace_value("currency", f'"{LONE_SURROGATE}UR"'))
    # Unknown fields are ignored and never re-encoded: a lone surrogate there does no harm.
    add_raw("lone-surrogate-unknown-key", None, with_field(f'"{LONE_SURROGATE}":1'))
    name = "valid-surrogate-pair"
    pair_user = f"{tag}-{name}-\U0001f600"
    text = _dumps(event(name, user_id=pair_user, item_id="\U0001f600")).replace("\U0001f600", "\\ud83d\\ude00")
    add(name, text.encode(), None, key=pair_user.encode())
    add_event("emoji-utf8-query", None, topic="search", query="red shoes \U0001f45f")
    add_event("escaped-nul-in-category", None, category="bo\x00oks")
    add_event("event-id-number", Reason.WRONG_TYPE, event_id=42)
    add_event("user-id-object", Reason.WRONG_TYPE, user_id={"id": 1})
    add_event("user-id-missing", Reason.MISSING_FIELD, user_id=None)
    add_event("item-id-list", Reason.WRONG_TYPE, item_id=["item-42"])
    add_event("type-list", Reason.UNKNOWN_EVENT_TYPE, type=["purchase"])
    add_event("type-unknown", Reason.UNKNOWN_EVENT_TYPE, type="click")
    add_event("id-max-length", None, item_id="i" * MAX_ID_CHARS)
    add_event("id-too-long", Reason.INVALID_VALUE, item_id="i" * (MAX_ID_CHARS + 1))
    add_event("category-too-long", Reason.INVALID_VALUE, category="c" * (MAX_ID_CHARS + 1))
    add_event("session-id-too-long", Reason.INVALID_VALUE, session_id="s" * (MAX_ID_CHARS + 1))
    add_event("query-max-length", None, topic="search", query="q" * MAX_TEXT_CHARS)
    add_event("query-too-long", Reason.INVALID_VALUE, topic="search", query="q" * (MAX_TEXT_CHARS + 1))
    add_event("id-whitespace-only", Reason.INVALID_VALUE, item_id=" \t")
    add_event("id-unicode-space-only", Reason.INVALID_VALUE, item_id="\u3000")
    add_event("currency-lower-case", Reason.INVALID_VALUE, currency="eur")
    add_event("currency-four-letters", Reason.INVALID_VALUE, currency="EURO")
    add_event("currency-digit", Reason.INVALID_VALUE, currency="E1R")
    add_event("currency-non-ascii", Reason.INVALID_VALUE, currency="ÉUR")
    add_event("currency-too-long", Reason.INVALID_VALUE, currency="E" * (MAX_ID_CHARS + 1))

    # The message key and the topic.
    add("no-key", _dumps(event("no-key")).encode(), Reason.MISSING_KEY, key=None)
    add("empty-key", _dumps(event("empty-key")).encode(), Reason.MISSING_KEY, key=b"")
    add("key-mismatch", _dumps(event("key-mismatch")).encode(), Reason.KEY_MISMATCH, key=b"someone-else")
    add("key-not-utf8", _dumps(event("key-not-utf8")).encode(), Reason.KEY_MISMATCH, key=b"\xff\xfe")
    add("type-topic-mismatch", _dumps(event("type-topic-mismatch", "browse")).encode(), Reason.TYPE_TOPIC_MISMATCH)
    return rows
