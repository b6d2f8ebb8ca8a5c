"""The decoder accepts every valid contract-v1 event and rejects each kind of malformed one with its reason."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import jsonschema  # type: ignore[import-untyped]
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from state.codec import decode_state, encode_state
from state.events import MAX_STORED_PRICE, PRICE_SCALE
from state.fold import FoldOutcome, fold_event
from state.layout import MAX_STORED_AMOUNT
from state.record import UserState
from state.spec import StateSpec
from streams.bridge import to_state_event
from streams.contract import decoder
from streams.contract.decoder import _JSON_STRING, Reason, Rejection, decode_event
from streams.contract.events import (
    MAX_EVENT_BYTES,
    MAX_FUTURE_SKEW_MS,
    MAX_ID_CHARS,
    MAX_PRICE,
    MAX_QUANTITY,
    MAX_TEXT_CHARS,
    MAX_TS_MS,
    MIN_TS_MS,
    BrowseEvent,
    Event,
    PurchaseEvent,
    SearchEvent,
    encode_event,
    event_to_dict,
)
from tests.streams.hostile_inputs import HostileInput, hostile_inputs

REPO = Path(__file__).parents[2]
SCHEMA = json.loads((REPO / "streams" / "contract" / "schemas" / "event-v1.schema.json").read_text())
TS = 1_767_225_600_000
NOW = TS + 3_600_000

VALID: list[Event] = [
    BrowseEvent(event_id="e1", user_id="u1", ts_ms=TS, item_id="i1", category="books"),
    BrowseEvent(event_id="e2", user_id="u1", ts_ms=TS, item_id="i1", session_id="s1"),
    SearchEvent(event_id="e3", user_id="u2", ts_ms=TS, query="red shoes"),
    PurchaseEvent(event_id="e4", user_id="u3", ts_ms=TS, item_id="i9", quantity=2, price=9.5, currency="EUR"),
    PurchaseEvent(event_id="e5", user_id="u3", ts_ms=TS, item_id="i9", quantity=1),  # free / price unknown
    # Clicks on a recommendation: the optional request id of the impression.
    BrowseEvent(event_id="e6", user_id="u1", ts_ms=TS, item_id="i2", request_id="7f6c3a52-2f0e-4c1b-9a57-1c2d3e4f5a6b"),
    PurchaseEvent(event_id="e7", user_id="u3", ts_ms=TS, item_id="i2", quantity=1, request_id="r-1"),
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
    ("price-without-currency", _bytes(_valid(currency=None)), b"u3", Reason.MISSING_FIELD),
    ("currency-without-price", _bytes(_valid(price=None)), b"u3", Reason.MISSING_FIELD),
    ("empty-user", _bytes(_valid(user_id=" ")), b" ", Reason.INVALID_VALUE),
    ("request-id-number", _bytes(_valid(request_id=7)), b"u3", Reason.WRONG_TYPE),
    ("request-id-empty", _bytes(_valid(request_id=" ")), b"u3", Reason.INVALID_VALUE),
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


@pytest.mark.parametrize(
    ("changes", "named"),
    [({"currency": None}, "'currency'"), ({"price": None}, "'price'"), ({"item_id": None}, "'item_id'")],
)
def test_a_missing_field_is_named_in_the_detail(changes: dict[str, object], named: str) -> None:
    result = decode_event(_bytes(_valid(**changes)))
    assert isinstance(result, Rejection) and result.reason is Reason.MISSING_FIELD
    assert named in result.detail


def test_a_purchase_without_price_and_currency_is_accepted_and_spends_nothing() -> None:
    from streams.bridge import to_state_event

    document = _valid(price=None, currency=None)
    event = decode_event(_bytes(document), b"u3", topic_type="purchase")
    assert isinstance(event, PurchaseEvent) and event.price is None and event.currency is None
    jsonschema.validate(document, SCHEMA)
    assert "price" not in event_to_dict(event) and "currency" not in event_to_dict(event)
    stored = to_state_event(event, 8)
    assert stored.quantity == 2 and stored.price == 0.0 and stored.spend_milli == 0


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


HOSTILE = hostile_inputs(NOW)


def test_the_hostile_table_covers_many_distinct_kinds() -> None:
    names = [row.name for row in HOSTILE]
    assert len(set(names)) == len(names)
    assert len({row.name for row in HOSTILE if row.reason is not None}) >= 25
    assert {row.reason for row in HOSTILE} >= {None, Reason.NOT_JSON, Reason.NOT_UTF8, Reason.INVALID_VALUE}


@pytest.mark.parametrize(
    ("text", "string"),
    [('"abc', '"abc'), ('"a\\"b', '"a\\"b'), ('"abc\\', '"abc\\'), ('"ok" "x', '"ok"'), ('"a\\\\" x', '"a\\\\"')],
)
def test_the_depth_check_reads_an_unterminated_string_to_the_end_of_the_text(text: str, string: str) -> None:
    # What keeps the depth check linear: a scan from any quote succeeds (at the closing quote or the end), so no
    # quote starts a failed scan to the end of the text (the unterminated-* rows of the hostile table, quadratic
    # before: half a minute for one message; tests do not time it).
    match = _JSON_STRING.match(text)
    assert match is not None and match.group() == string


@pytest.mark.parametrize("row", HOSTILE, ids=[row.name for row in HOSTILE])
def test_hostile_input_gets_its_verdict_and_never_raises(row: HostileInput) -> None:
    result = decode_event(row.value, row.key, topic_type=row.topic_type, require_key=True, now_ms=NOW)
    if row.reason is not None:
        assert isinstance(result, Rejection), row.name
        assert result.reason is row.reason, (row.name, result)
        assert "hostile" not in result.detail  # details name fields, never values such as the user id
        return
    assert not isinstance(result, Rejection), (row.name, result)
    # What the decoder accepts can be written back to the wire, hashed and stored.
    assert decode_event(encode_event(result), row.key, topic_type=row.topic_type, now_ms=NOW) == result
    record = UserState.new()
    assert fold_event(record, to_state_event(result, 4), StateSpec()) is FoldOutcome.ACCEPTED
    assert decode_state(encode_state(record)) == record


def test_negative_zero_price_is_decoded_as_zero() -> None:
    row = next(r for r in HOSTILE if r.name == "price-negative-zero")
    event = decode_event(row.value, row.key, topic_type="purchase")
    assert isinstance(event, PurchaseEvent)
    assert event.price == 0.0 and math.copysign(1.0, event.price) == 1.0


def test_a_decoder_bug_is_a_rejection_not_an_exception(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "-".join(("secret", "user"))  # not in any source line the logged frames show

    def broken(*args: object) -> Event:
        raise UnicodeEncodeError("utf-8", secret, 0, 1, "surrogates not allowed")

    monkeypatch.setattr(decoder, "_parse", broken)
    with caplog.at_level(logging.ERROR, logger="streams.contract.decoder"):
        result = decode_event(_bytes(_valid()), b"u3", topic_type="purchase")
    assert result == Rejection(Reason.UNDECODABLE, "the decoder failed (UnicodeEncodeError)")
    assert "UnicodeEncodeError" in caplog.text
    assert "secret-user" not in caplog.text  # the exception's message may quote the value: it is not logged


def test_future_skew_is_well_below_the_allowed_lateness() -> None:
    # An accepted event from the future makes the user's later correct events late by as much.
    assert StateSpec().allowed_lateness_ms >= 6 * MAX_FUTURE_SKEW_MS
    at_edge = _bytes(_valid(ts=NOW + MAX_FUTURE_SKEW_MS))
    assert isinstance(decode_event(at_edge, b"u3", now_ms=NOW), PurchaseEvent)
    beyond = decode_event(_bytes(_valid(ts=NOW + MAX_FUTURE_SKEW_MS + 1)), b"u3", now_ms=NOW)
    assert isinstance(beyond, Rejection) and beyond.reason is Reason.TS_OUT_OF_RANGE


def test_contract_bounds_fit_the_state() -> None:
    assert MAX_QUANTITY <= MAX_STORED_AMOUNT
    assert MAX_PRICE <= MAX_STORED_PRICE
    # One purchase's spend in thousandths is exact and below the saturation point of the sums.
    assert MAX_QUANTITY * MAX_PRICE * PRICE_SCALE < 2**60 < MAX_STORED_AMOUNT


def _id_bounds(field: str) -> list[tuple[str, dict[str, object], bool]]:
    return [
        (f"{field}-max", {field: "x" * MAX_ID_CHARS}, True),
        (f"{field}-too-long", {field: "x" * (MAX_ID_CHARS + 1)}, False),
        (f"{field}-one-char", {field: "x"}, True),
        (f"{field}-empty", {field: ""}, False),
        (f"{field}-blank", {field: " "}, False),
    ]


# Each case: the changes to a valid purchase (or search, for the query), and whether the result is inside the
# contract. Just inside must pass both the decoder and the JSON Schema, just outside must fail both.
BOUNDS: list[tuple[str, dict[str, object], bool]] = [
    ("ts-min", {"ts": MIN_TS_MS}, True),
    ("ts-below-min", {"ts": MIN_TS_MS - 1}, False),
    ("ts-max", {"ts": MAX_TS_MS - 1}, True),
    ("ts-at-max", {"ts": MAX_TS_MS}, False),
    ("quantity-min", {"quantity": 1}, True),
    ("quantity-below-min", {"quantity": 0}, False),
    ("quantity-max", {"quantity": MAX_QUANTITY}, True),
    ("quantity-above-max", {"quantity": MAX_QUANTITY + 1}, False),
    ("price-min", {"price": 0}, True),
    ("price-below-min", {"price": -0.001}, False),
    ("price-max", {"price": MAX_PRICE}, True),
    ("price-max-float", {"price": float(MAX_PRICE)}, True),
    ("price-above-max", {"price": math.nextafter(MAX_PRICE, math.inf)}, False),
    ("currency-3", {"currency": "JPY"}, True),
    ("currency-2", {"currency": "JP"}, False),
    ("currency-4", {"currency": "JPYY"}, False),
    ("currency-newline", {"currency": "JPY\n"}, False),
    *(case for field in ("event_id", "user_id", "session_id", "item_id", "category") for case in _id_bounds(field)),
    ("query-max", {"type": "search", "query": "q" * MAX_TEXT_CHARS}, True),
    ("query-too-long", {"type": "search", "query": "q" * (MAX_TEXT_CHARS + 1)}, False),
    ("query-blank", {"type": "search", "query": " "}, False),
]


@pytest.mark.parametrize(("name", "changes", "inside"), BOUNDS, ids=[b[0] for b in BOUNDS])
def test_schema_and_decoder_agree_at_the_bounds(name: str, changes: dict[str, object], inside: bool) -> None:
    document = _valid(**changes)
    if document["type"] == "search":
        document = {k: v for k, v in document.items() if k not in {"item_id", "quantity", "price", "currency"}}
    result = decode_event(_bytes(document))
    assert (not isinstance(result, Rejection)) is inside, (name, result)
    if inside:
        jsonschema.validate(document, SCHEMA)
    else:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(document, SCHEMA)


def test_schema_states_the_contract_constants() -> None:
    properties, defs = SCHEMA["properties"], SCHEMA["$defs"]  # fields of one event type are defined in $defs
    assert properties["ts"]["minimum"] == MIN_TS_MS
    assert properties["ts"]["exclusiveMaximum"] == MAX_TS_MS
    assert defs["quantity"]["maximum"] == MAX_QUANTITY
    assert defs["price"]["maximum"] == MAX_PRICE
    assert defs["query"]["maxLength"] == MAX_TEXT_CHARS
    assert defs["id"]["maxLength"] == MAX_ID_CHARS
    assert str(MAX_EVENT_BYTES) in SCHEMA["description"]
    assert f"{MAX_FUTURE_SKEW_MS // 60_000} minutes" in SCHEMA["description"]


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=30,
)


@st.composite
def _near_valid_documents(draw: st.DrawFn) -> bytes:
    """A valid purchase with some fields replaced by arbitrary JSON values, and perhaps cut or spliced."""
    obj: dict[str, object] = _valid()
    for field in draw(st.lists(st.sampled_from([*obj, "x"]), max_size=3)):
        obj[field] = draw(_json_values)
    data = json.dumps(obj, allow_nan=True).encode()
    if draw(st.booleans()):
        cut = draw(st.integers(0, len(data)))
        data = data[:cut] + draw(st.binary(max_size=8)) + data[cut:]
    return data


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=200), _near_valid_documents()), st.one_of(st.none(), st.binary(max_size=8)))
def test_decoder_is_total(value: bytes, key: bytes | None) -> None:
    result = decode_event(value, key, topic_type="purchase", require_key=False, now_ms=NOW)
    assert isinstance(result, Rejection | PurchaseEvent)
    if isinstance(result, PurchaseEvent):
        assert 1 <= result.quantity <= MAX_QUANTITY and 0.0 <= (result.price or 0.0) <= MAX_PRICE
        assert (result.price is None) == (result.currency is None)
        record = UserState.new()
        fold_event(record, to_state_event(result, 4), StateSpec())
        assert decode_state(encode_state(record)) == record


def test_every_reason_code_is_documented() -> None:
    contracts = (REPO / "docs" / "contracts.md").read_text(encoding="utf-8")
    contract = contracts[contracts.index("## Input event contract, version 1") :]
    contract = contract[: contract.index("\n## ", 1)]
    metrics = (REPO / "docs" / "metrics.md").read_text(encoding="utf-8")
    rejected = next(line for line in metrics.splitlines() if "profilestream_events_rejected_total" in line)
    for reason in Reason:
        assert f"`{reason.value}`" in contract, reason
        assert f"`{reason.value}`" in rejected, reason


def test_a_message_that_is_not_json_says_where_the_parser_stopped_without_quoting_it() -> None:
    result = decode_event(b'{"schema":1,"user_id":"secret-user" "type":"browse"}', b"k")
    assert isinstance(result, Rejection) and result.reason is Reason.NOT_JSON
    assert result.detail == "message is not JSON: Expecting ',' delimiter at line 1 column 37"
    assert "secret" not in result.detail


def test_a_byte_order_mark_is_named() -> None:
    result = decode_event("\ufeff".encode() + _bytes(_valid()), b"u3", topic_type="purchase")
    assert isinstance(result, Rejection) and result.reason is Reason.NOT_JSON
    assert "byte-order mark" in result.detail
