"""The decoder accepts every valid contract-v1 event and rejects each kind of malformed one with its reason."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema  # type: ignore[import-untyped]
import pytest

from streams.contract import BrowseEvent, Event, PurchaseEvent, SearchEvent, encode_event, event_to_dict
from streams.decoder import Reason, Rejection, decode_event

SCHEMA = json.loads((Path(__file__).parents[2] / "streams" / "schemas" / "event-v1.schema.json").read_text())
TS = 1_767_225_600_000

VALID: list[Event] = [
    BrowseEvent(event_id="e1", user_id="u1", ts_ms=TS, item_id="i1", category="books"),
    BrowseEvent(event_id="e2", user_id="u1", ts_ms=TS, item_id="i1", session_id="s1"),
    SearchEvent(event_id="e3", user_id="u2", ts_ms=TS, query="red shoes"),
    PurchaseEvent(event_id="e4", user_id="u3", ts_ms=TS, item_id="i9", quantity=2, price=9.5, currency="EUR"),
]


@pytest.mark.parametrize("event", VALID, ids=lambda e: f"{e.type}-{e.event_id}")
def test_valid_events_round_trip(event: BrowseEvent | SearchEvent | PurchaseEvent) -> None:
    payload = encode_event(event)
    assert decode_event(payload, event.user_id.encode(), topic_type=event.type, require_key=True) == event
    jsonschema.validate(json.loads(payload), SCHEMA)


def _valid(**changes: object) -> dict[str, object]:
    obj = event_to_dict(VALID[3])
    obj.update(changes)
    return {k: v for k, v in obj.items() if v is not None}


def _bytes(obj: object) -> bytes:
    return json.dumps(obj).encode()


MALFORMED: list[tuple[str, bytes | None, bytes | None, Reason]] = [
    ("not-utf8", b"\xff\xfe{", b"u3", Reason.NOT_UTF8),
    ("not-json", b"{user_id: u3", b"u3", Reason.NOT_JSON),
    ("not-object", b"[1, 2]", b"u3", Reason.NOT_OBJECT),
    ("no-schema", _bytes(_valid(schema=None)), b"u3", Reason.UNSUPPORTED_SCHEMA),
    ("schema-2", _bytes(_valid(schema=2)), b"u3", Reason.UNSUPPORTED_SCHEMA),
    ("missing-item", _bytes(_valid(item_id=None)), b"u3", Reason.MISSING_FIELD),
    ("missing-event-id", _bytes(_valid(event_id=None)), b"u3", Reason.MISSING_FIELD),
    ("ts-string", _bytes(_valid(ts="yesterday")), b"u3", Reason.WRONG_TYPE),
    ("ts-float", _bytes(_valid(ts=1.5)), b"u3", Reason.WRONG_TYPE),
    ("ts-seconds", _bytes(_valid(ts=1_767_225_600)), b"u3", Reason.TS_OUT_OF_RANGE),
    ("quantity-bool", _bytes(_valid(quantity=True)), b"u3", Reason.WRONG_TYPE),
    ("unknown-type", _bytes(_valid(type="click")), b"u3", Reason.UNKNOWN_EVENT_TYPE),
    ("type-topic", _bytes(_valid(type="browse")), b"u3", Reason.TYPE_TOPIC_MISMATCH),
    ("key-mismatch", _bytes(_valid()), b"someone-else", Reason.KEY_MISMATCH),
    ("no-key", _bytes(_valid()), None, Reason.MISSING_KEY),
    ("negative-quantity", _bytes(_valid(quantity=-1)), b"u3", Reason.INVALID_VALUE),
    ("negative-price", _bytes(_valid(price=-0.01)), b"u3", Reason.INVALID_VALUE),
    ("bad-currency", _bytes(_valid(currency="euro")), b"u3", Reason.INVALID_VALUE),
    ("empty-user", _bytes(_valid(user_id=" ")), b" ", Reason.INVALID_VALUE),
    ("too-large", b"{" + b" " * 70_000 + b"}", b"u3", Reason.TOO_LARGE),
    ("null-value", None, b"u3", Reason.MISSING_FIELD),
]


@pytest.mark.parametrize(("name", "value", "key", "reason"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_messages_are_rejected_with_their_reason(
    name: str, value: bytes | None, key: bytes | None, reason: Reason
) -> None:
    result = decode_event(value, key, topic_type="purchase", require_key=True)
    assert isinstance(result, Rejection), name
    assert result.reason is reason
    # Details name fields, never values: no personal data leaves through them.
    assert "u3" not in result.detail


def test_schema_file_rejects_what_the_decoder_rejects() -> None:
    for _, value, _, reason in MALFORMED:
        if value is None or reason in {Reason.KEY_MISMATCH, Reason.MISSING_KEY, Reason.TYPE_TOPIC_MISMATCH}:
            continue  # properties of the message or topic, not of the JSON document
        try:
            document = json.loads(value)
        except ValueError:
            continue
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(document, SCHEMA)


def test_unknown_fields_are_ignored_for_forward_compatibility() -> None:
    payload = _bytes(_valid(coupon="X1"))
    assert isinstance(decode_event(payload, b"u3", topic_type="purchase"), PurchaseEvent)
