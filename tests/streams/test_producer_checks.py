"""The producer SDK's check before sending, without a broker: a bad event raises InvalidEventError naming its field
and reason, whatever Python values its fields hold; good events leave in the wire format, keyed by their user."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest

from streams.client.producer import EventProducer, now_ms
from streams.client.pseudonym import Pseudonymiser, is_pseudonym
from streams.contract.decoder import InvalidEventError, Reason, Rejection, decode_event
from streams.contract.erasure import InvalidErasureError
from streams.contract.events import (
    MAX_EVENT_BYTES,
    MAX_FUTURE_SKEW_MS,
    MAX_ID_CHARS,
    BrowseEvent,
    PurchaseEvent,
    encode_event,
)
from streams.contract.feedback import Impression, InvalidImpressionError
from tests.streams.fake_kafka import RecordingKafkaProducer, record_kafka

KEY = b"0123456789abcdef0123456789abcdef"
TS = 1_767_225_600_000
LONE = json.loads('"\\ud83d"')
"""A string holding a lone surrogate, as a JSON parser gives it for the escape of half an emoji."""

Send = Callable[[EventProducer], object]


@pytest.fixture(params=[False, True], ids=["plain", "pseudonymising"])
def sdk(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[EventProducer, RecordingKafkaProducer]]:
    """A producer recording what it sends (to ``RecordingKafkaProducer``), with and without pseudonyms."""
    made = record_kafka(monkeypatch)
    pseudonymiser = Pseudonymiser(KEY) if request.param else None
    with EventProducer("127.0.0.1:9", pseudonymiser=pseudonymiser) as producer:
        yield producer, made[0]


def _wrong(value: object) -> Any:
    """``value``, typed for the helpers: values of the wrong type reach them as they would from untyped callers."""
    return value


def _priced(price: float) -> Send:
    return lambda p: p.purchase("u1", "i1", quantity=1, price=price, currency="EUR", ts_ms=TS)


def _nested(depth: int) -> list[Any]:
    """A list nested ``depth`` deep: beyond what json (and Python's recursion limit) can write."""
    outer: list[Any] = []
    inner = outer
    for _ in range(depth):
        inner.append([])
        inner = inner[0]
    return outer


BAD: list[tuple[str, Send, Reason, str]] = [
    (
        "category-nested",
        lambda p: p.browse("u1", "i1", category=_wrong(_nested(5000))),
        Reason.WRONG_TYPE,
        "'category'",
    ),
    ("item-lone-surrogate", lambda p: p.browse("u1", LONE, ts_ms=TS), Reason.INVALID_VALUE, "'item_id' has a lone"),
    ("user-lone-surrogate", lambda p: p.browse(LONE, "i1", ts_ms=TS), Reason.INVALID_VALUE, "'user_id' has a lone"),
    ("query-lone-surrogate", lambda p: p.search("u1", "a" + LONE, ts_ms=TS), Reason.INVALID_VALUE, "'query'"),
    ("user-none", lambda p: p.browse(_wrong(None), "i1", ts_ms=TS), Reason.MISSING_FIELD, "'user_id'"),
    ("user-int", lambda p: p.browse(_wrong(7), "i1", ts_ms=TS), Reason.WRONG_TYPE, "'user_id'"),
    ("user-empty", lambda p: p.browse("", "i1", ts_ms=TS), Reason.INVALID_VALUE, "'user_id'"),
    ("user-blank", lambda p: p.browse(" \t", "i1", ts_ms=TS), Reason.INVALID_VALUE, "'user_id'"),
    ("user-too-long", lambda p: p.browse("u" * (MAX_ID_CHARS + 1), "i1", ts_ms=TS), Reason.INVALID_VALUE, "'user_id'"),
    ("item-bytes", lambda p: p.browse("u1", _wrong(b"i1"), ts_ms=TS), Reason.WRONG_TYPE, "'item_id'"),
    (
        "session-set",
        lambda p: p.browse("u1", "i1", session_id=_wrong({"s"}), ts_ms=TS),
        Reason.WRONG_TYPE,
        "'session_id'",
    ),
    ("event-id-empty", lambda p: p.browse("u1", "i1", event_id="", ts_ms=TS), Reason.INVALID_VALUE, "'event_id'"),
    ("event-id-blank", lambda p: p.browse("u1", "i1", event_id="  ", ts_ms=TS), Reason.INVALID_VALUE, "'event_id'"),
    (
        "price-decimal",
        lambda p: p.purchase("u1", "i1", quantity=1, price=_wrong(Decimal("1.5")), currency="EUR", ts_ms=TS),
        Reason.WRONG_TYPE,
        "'price'",
    ),
    ("price-nan", _priced(math.nan), Reason.INVALID_VALUE, "'price'"),
    ("price-inf", _priced(math.inf), Reason.INVALID_VALUE, "'price'"),
    ("price-minus-inf", _priced(-math.inf), Reason.INVALID_VALUE, "'price'"),
    ("quantity-huge", lambda p: p.purchase("u1", "i1", quantity=10**5000, ts_ms=TS), Reason.INVALID_VALUE, "quantity"),
    (
        "quantity-huge-negative",
        lambda p: p.purchase("u1", "i1", quantity=-(10**5000)),
        Reason.INVALID_VALUE,
        "quantity",
    ),
    (
        "quantity-decimal",
        lambda p: p.purchase("u1", "i1", quantity=_wrong(Decimal(2))),
        Reason.WRONG_TYPE,
        "'quantity'",
    ),
    ("quantity-nan", lambda p: p.purchase("u1", "i1", quantity=_wrong(math.nan)), Reason.WRONG_TYPE, "'quantity'"),
    ("ts-huge", lambda p: p.search("u1", "q", ts_ms=10**5000), Reason.TS_OUT_OF_RANGE, "ts"),
    ("ts-nan", lambda p: p.search("u1", "q", ts_ms=_wrong(math.nan)), Reason.WRONG_TYPE, "'ts'"),
    (
        "ts-future",
        lambda p: p.search("u1", "q", ts_ms=now_ms() + MAX_FUTURE_SKEW_MS + 60_000),
        Reason.TS_OUT_OF_RANGE,
        "ts",
    ),
    (
        "caller-built-empty-user",
        lambda p: p.send(BrowseEvent(event_id="e1", user_id="", ts_ms=TS, item_id="i1")),
        Reason.INVALID_VALUE,
        "'user_id'",
    ),
    (
        "caller-built-lone-surrogate-user",
        lambda p: p.send(BrowseEvent(event_id="e1", user_id=LONE, ts_ms=TS, item_id="i1")),
        Reason.INVALID_VALUE,
        "'user_id'",
    ),
]


@pytest.mark.parametrize(("name", "send", "reason", "named"), BAD, ids=[row[0] for row in BAD])
def test_a_bad_event_raises_invalid_event_error_naming_the_field_and_nothing_is_sent(
    sdk: tuple[EventProducer, RecordingKafkaProducer], name: str, send: Send, reason: Reason, named: str
) -> None:
    producer, kafka = sdk
    with pytest.raises(InvalidEventError) as raised:
        send(producer)
    assert raised.value.reason is reason, (name, raised.value)
    assert named in raised.value.detail, (name, raised.value)
    assert kafka.sent == []


def test_good_events_leave_in_the_wire_format_keyed_by_their_user(monkeypatch: pytest.MonkeyPatch) -> None:
    made = record_kafka(monkeypatch)
    with EventProducer("127.0.0.1:9", topic_prefix="t.") as producer:
        producer.browse("u1", "i1", category="books", ts_ms=TS, event_id="e1", session_id="s1")
        producer.purchase("u\u00e9", "i1", quantity=2, price=12, currency="EUR", ts_ms=TS, event_id="e2")
        event = PurchaseEvent(event_id="e3", user_id="u2", ts_ms=TS, item_id="i2", quantity=1)
        producer.send(event)
    browse = BrowseEvent(event_id="e1", user_id="u1", ts_ms=TS, item_id="i1", category="books", session_id="s1")
    purchase = PurchaseEvent(
        event_id="e2", user_id="u\u00e9", ts_ms=TS, item_id="i1", quantity=2, price=12, currency="EUR"
    )
    assert made[0].sent == [
        ("t.events.browse", encode_event(browse), b"u1"),
        ("t.events.purchase", encode_event(purchase), "u\u00e9".encode()),
        ("t.events.purchase", encode_event(event), b"u2"),
    ]


def test_an_absent_event_id_is_made_and_an_empty_one_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    made = record_kafka(monkeypatch)
    with EventProducer("127.0.0.1:9") as producer:
        producer.browse("u1", "i1", ts_ms=TS)
        with pytest.raises(InvalidEventError, match="'event_id' must not be empty"):
            producer.browse("u1", "i1", ts_ms=TS, event_id="")
    [(_, value, _)] = made[0].sent
    sent = decode_event(value)
    assert isinstance(sent, BrowseEvent) and len(sent.event_id) == 36


def test_a_pseudonymising_producer_sends_the_pseudonym_only(monkeypatch: pytest.MonkeyPatch) -> None:
    made = record_kafka(monkeypatch)
    alias = Pseudonymiser(KEY)("alice-raw-id")
    with EventProducer("127.0.0.1:9", pseudonymiser=Pseudonymiser(KEY)) as producer:
        producer.browse("alice-raw-id", "i1", ts_ms=TS)
        producer.send(BrowseEvent(event_id="e1", user_id="alice-raw-id", ts_ms=TS, item_id="i2"))
        producer.send(BrowseEvent(event_id="e2", user_id=alias, ts_ms=TS, item_id="i3"))
    assert len(made[0].sent) == 3
    for topic, value, key in made[0].sent:
        assert key == alias.encode() and b"alice-raw-id" not in value
        event = decode_event(value, key, topic_type=topic.rsplit(".", 1)[1], require_key=True)
        assert isinstance(event, BrowseEvent) and event.user_id == alias


IDS: list[object] = [
    "u1",
    "x" * MAX_ID_CHARS,
    "x" * (MAX_ID_CHARS + 1),
    "\U0001f600" * MAX_ID_CHARS,
    "",
    " ",
    "\t\n",
    "\u3000",  # an ideographic space
    "\x1f",  # Python counts the unit separator as a space
    "a\x00b",
    LONE,
    "a" + LONE,
    None,
    7,
    ["u1"],
]


def _decoder_accepts_id(user_id: object) -> bool:
    document = {"schema": 1, "event_id": "e1", "user_id": user_id, "type": "browse", "ts": TS, "item_id": "i1"}
    return not isinstance(decode_event(json.dumps(document).encode()), Rejection)


@pytest.mark.parametrize("user_id", IDS, ids=range(len(IDS)))
def test_the_sdk_maps_exactly_the_ids_the_decoder_accepts(monkeypatch: pytest.MonkeyPatch, user_id: object) -> None:
    record_kafka(monkeypatch)
    with EventProducer("127.0.0.1:9", pseudonymiser=Pseudonymiser(KEY)) as producer:
        key = producer.user_key(_wrong(user_id))
    # A pseudonym of an id the contract rejects would be a valid id: such an id must stay as it is, to be refused.
    assert (isinstance(key, str) and is_pseudonym(key)) is _decoder_accepts_id(user_id)


BROWSE_LINE = (
    b'{"type": "browse", "schema": 1, "user_id": "u1", "event_id": "e1", "ts": %d, "item_id": "i1",'
    b' "own": {"a": [1, 2.50]}}'
)


def test_send_json_sends_the_bytes_as_they_are_with_fields_of_the_producers_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made = record_kafka(monkeypatch)
    line = BROWSE_LINE % TS
    with EventProducer("127.0.0.1:9", topic_prefix="t.") as producer:
        producer.send_json(line)
        with pytest.raises(InvalidEventError) as future:
            producer.send_json(BROWSE_LINE % (now_ms() + MAX_FUTURE_SKEW_MS + 60_000))
        assert future.value.reason is Reason.TS_OUT_OF_RANGE
        with pytest.raises(InvalidEventError) as not_json:
            producer.send_json(b'{"schema": 1,')
        assert not_json.value.reason is Reason.NOT_JSON
    assert made[0].sent == [("t.events.browse", line, b"u1")]


def test_send_json_with_pseudonyms_replaces_the_user_id_and_keeps_every_other_field(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made = record_kafka(monkeypatch)
    alias = Pseudonymiser(KEY)("u1")
    line = BROWSE_LINE % TS
    with EventProducer("127.0.0.1:9", pseudonymiser=Pseudonymiser(KEY)) as producer:
        producer.send_json(line)
        # Accepted by the decoder (an unknown field is ignored) but not writable again: refused, not altered.
        with pytest.raises(InvalidEventError, match="pseudonym"):
            producer.send_json(line.replace(b'"own"', b'"huge": 1e400, "own"'))
    [(topic, value, key)] = made[0].sent
    assert (topic, key) == ("events.browse", alias.encode())
    assert json.loads(value) == {**json.loads(line), "user_id": alias}
    assert b'"u1"' not in value


@pytest.mark.parametrize(
    ("user_id", "reason"),
    [(None, Reason.MISSING_FIELD), (7, Reason.WRONG_TYPE), ("  ", Reason.INVALID_VALUE), (LONE, Reason.INVALID_VALUE)],
)
def test_erasure_requests_and_impressions_refuse_a_bad_user_id_with_the_contracts_error(
    sdk: tuple[EventProducer, RecordingKafkaProducer], user_id: Any, reason: Reason
) -> None:
    producer, kafka = sdk
    with pytest.raises(InvalidErasureError) as erasure:
        producer.request_erasure(user_id)
    shown = Impression(
        request_id="r1", user_id=user_id, ts_ms=TS, model_version=None, source="popular", item_ids=("i1",)
    )
    with pytest.raises(InvalidImpressionError) as impression:
        producer.impression(shown)
    assert erasure.value.reason is reason and impression.value.reason is reason
    assert "'user_id'" in erasure.value.detail and "'user_id'" in impression.value.detail
    assert kafka.sent == []


def test_an_impression_field_json_cannot_hold_is_refused(sdk: tuple[EventProducer, RecordingKafkaProducer]) -> None:
    producer, kafka = sdk
    with pytest.raises(InvalidImpressionError):
        shown = Impression(
            request_id="r1", user_id="u1", ts_ms=TS, model_version=None, source="popular", item_ids=(LONE,)
        )
        producer.impression(shown)
    assert kafka.sent == []


def test_impressions_refuse_nested_or_string_item_lists(sdk: tuple[EventProducer, RecordingKafkaProducer]) -> None:
    producer, kafka = sdk

    def shown(item_ids: Any) -> Impression:
        return Impression(
            request_id="r1", user_id="u1", ts_ms=TS, model_version=None, source="popular", item_ids=item_ids
        )

    with pytest.raises(InvalidImpressionError) as nested:
        producer.impression(shown((_nested(5000),)))
    assert nested.value.reason is Reason.INVALID_VALUE
    with pytest.raises(InvalidImpressionError) as whole:
        producer.impression(shown("item-12"))  # was sent as the items "i", "t", "e", "m", ...
    assert whole.value.reason is Reason.WRONG_TYPE
    assert kafka.sent == []


def test_send_json_takes_bytes_only(sdk: tuple[EventProducer, RecordingKafkaProducer]) -> None:
    producer, kafka = sdk
    line = b'{"schema":1,"event_id":"e1","user_id":"u1","type":"browse","ts":%d,"item_id":"i1"}' % TS
    with pytest.raises(TypeError, match="bytes"):
        producer.send_json(_wrong(line.decode()))  # was reported as the decoder's own bug
    producer.send_json(bytearray(line))
    assert len(kafka.sent) == 1


def test_send_json_with_pseudonyms_sends_a_line_it_would_send_without(monkeypatch: pytest.MonkeyPatch) -> None:
    """A field of the producer's own holding an escaped lone surrogate: accepted as written, and so with the
    pseudonym in place of the id (it was refused as an unwritable number)."""
    made = record_kafka(monkeypatch)
    line = b'{"schema":1,"event_id":"e1","user_id":"u1","type":"browse","ts":%d,"item_id":"i1","note":"\\ud800"}' % TS
    with EventProducer("127.0.0.1:9", pseudonymiser=Pseudonymiser(KEY)) as producer:
        producer.send_json(line)
    [(_, value, key)] = made[0].sent
    assert json.loads(value)["note"] == json.loads('"\\ud800"')
    assert key is not None and is_pseudonym(key.decode())


def test_a_line_the_pseudonym_makes_too_large_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    record_kafka(monkeypatch)
    document = {"schema": 1, "event_id": "e1", "user_id": "u1", "type": "browse", "ts": TS, "item_id": "i1"}
    short = json.dumps(document, separators=(",", ":"))
    line = short[:-1] + ',"pad":"' + "x" * (MAX_EVENT_BYTES - len(short) - 9) + '"}'
    assert len(line) == MAX_EVENT_BYTES  # valid as written
    with (
        EventProducer("127.0.0.1:9", pseudonymiser=Pseudonymiser(KEY)) as producer,
        pytest.raises(InvalidEventError) as raised,
    ):
        producer.send_json(line.encode())
    assert raised.value.reason is Reason.TOO_LARGE
    assert "with the pseudonym" in raised.value.detail
