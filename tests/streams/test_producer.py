"""The producer SDK against the real broker: typed helpers, keys and topics, validation before sending."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer
from kafka.admin import ConfigResource, ConfigResourceType

from streams.cli.main import main as cli_main
from streams.client.producer import EventProducer, UndeliveredError
from streams.client.pseudonym import Pseudonymiser
from streams.contract.decoder import InvalidEventError, Reason, decode_event
from streams.contract.events import BrowseEvent, PurchaseEvent, SearchEvent
from streams.settings import Settings
from tests.harness import all_records, wait_until

pytestmark = pytest.mark.kafka
TS = 1_767_225_600_000


def test_helpers_send_valid_keyed_events_to_the_topic_of_their_type(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    with EventProducer(settings.kafka_bootstrap, topic_prefix=settings.topic_prefix) as producer:
        producer.browse("user-1", "item-42", category="books", ts_ms=TS, session_id="s1")
        producer.search("user-1", "science fiction", ts_ms=TS + 1)
        producer.purchase("user-2", "item-42", quantity=2, price=12.5, currency="EUR", ts_ms=TS + 2)
        with pytest.raises(InvalidEventError) as bad:
            producer.purchase("user-2", "item-42", quantity=-1, price=12.5, currency="EUR")
        assert bad.value.reason is Reason.INVALID_VALUE
        with pytest.raises(InvalidEventError):
            producer.search("user-3", "   ")
        producer.flush()

    topics = [settings.topic(f"events.{t}") for t in ("browse", "search", "purchase")]
    consumer = KafkaConsumer(*topics, bootstrap_servers=settings.kafka_bootstrap, auto_offset_reset="earliest")
    received: dict[str, list[object]] = {t: [] for t in topics}
    try:

        def collect() -> bool:
            for tp, records in consumer.poll(timeout_ms=200).items():
                for r in records:
                    received[tp.topic].append(decode_event(r.value, r.key, topic_type=tp.topic.rsplit(".", 1)[1]))
            return sum(map(len, received.values())) >= 3

        wait_until(collect, 30, "the three events")
    finally:
        consumer.close()
    [browse] = received[topics[0]]
    [search] = received[topics[1]]
    [purchase] = received[topics[2]]
    assert isinstance(browse, BrowseEvent) and (browse.user_id, browse.category, browse.session_id) == (
        "user-1",
        "books",
        "s1",
    )
    assert isinstance(search, SearchEvent) and search.query == "science fiction"
    assert isinstance(purchase, PurchaseEvent) and (purchase.quantity, purchase.price) == (2, 12.5)
    assert len({browse.event_id, search.event_id, purchase.event_id}) == 3, "fresh event ids"


def test_produce_command_sends_each_valid_line_byte_for_byte_to_the_real_broker(
    make_settings: Callable[..., Settings], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``profilestream produce`` against the broker: what a consumer reads is the line as written (fields of the
    producer's own and nulls included), keyed by its user id, on its type's topic; an invalid line is not sent."""
    settings = make_settings()
    own = json.dumps(
        {
            "schema": 1,
            "event_id": "e1",
            "user_id": "u1",
            "type": "browse",
            "ts": TS,
            "item_id": "i1",
            "coupon": {"x": 1},
        }
    ).encode()
    free = json.dumps(
        {
            "schema": 1,
            "event_id": "e2",
            "user_id": "u2",
            "type": "purchase",
            "ts": TS,
            "item_id": "i2",
            "quantity": 1,
            "price": None,
            "currency": None,
        }
    ).encode()
    invalid = json.dumps({"schema": 1, "event_id": "e3", "user_id": "u3", "type": "browse", "ts": TS}).encode()
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join([own, invalid, free]) + b"\n")

    flags = ["--kafka-bootstrap", settings.kafka_bootstrap, "--topic-prefix", settings.topic_prefix]
    assert cli_main(["produce", str(events), *flags]) == 1  # one line was invalid
    out, err = capsys.readouterr()
    assert out.strip() == "sent 2 events, skipped 1 invalid lines"
    assert err.startswith("line 2: missing_field:")

    # produce flushes before it returns: reading each topic to its end offsets sees everything it sent.
    assert _input_topics(settings) == {"browse": [(b"u1", own)], "search": [], "purchase": [(b"u2", free)]}


def _search_topic_takes_at_most_1024_bytes(settings: Settings) -> None:
    """The broker refuses a record batch of more than 1,024 bytes on the search topic (MESSAGE_TOO_LARGE)."""
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    try:
        topic = ConfigResource(ConfigResourceType.TOPIC, settings.topic("events.search"), {"max.message.bytes": "1024"})
        admin.alter_configs([topic])
    finally:
        admin.close()


def test_produce_command_names_the_lines_the_broker_refused_and_exits_4(
    make_settings: Callable[..., Settings], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A record the broker refuses is not counted as sent: kafka-python's flush does not raise for it, so the
    command reads each send's outcome and names the lines to send again."""
    settings = make_settings()
    _search_topic_takes_at_most_1024_bytes(settings)  # a line of 3 KB is refused (MESSAGE_TOO_LARGE)
    small = json.dumps({"schema": 1, "event_id": "e1", "user_id": "u1", "type": "browse", "ts": TS, "item_id": "i1"})
    big = {"schema": 1, "user_id": "u2", "type": "search", "ts": TS, "query": "q", "note": "x" * 3000}
    invalid = json.dumps({"schema": 1, "event_id": "e3", "user_id": "u3", "type": "browse", "ts": TS})
    lines = [small, json.dumps({**big, "event_id": "e2"}), invalid, json.dumps({**big, "event_id": "e4"})]
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(lines) + "\n")

    flags = ["--kafka-bootstrap", settings.kafka_bootstrap, "--topic-prefix", settings.topic_prefix]
    assert cli_main(["produce", str(events), *flags]) == 4
    out, err = capsys.readouterr()
    assert out.strip() == "sent 1 events, 2 not delivered, skipped 1 invalid lines", err
    reported = [line for line in err.splitlines() if line.startswith("line ")]
    assert reported[0].startswith("line 3: missing_field:")
    assert reported[1:] == [
        "line 2: not delivered: MessageSizeTooLargeError",
        "line 4: not delivered: MessageSizeTooLargeError",
    ]
    assert _input_topics(settings) == {"browse": [(b"u1", small.encode())], "search": [], "purchase": []}


def test_the_sdks_flush_raises_for_a_record_the_broker_refused(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    _search_topic_takes_at_most_1024_bytes(settings)
    producer = EventProducer(settings.kafka_bootstrap, topic_prefix=settings.topic_prefix)
    try:
        producer.browse("u1", "i1", ts_ms=TS)
        producer.search("u1", "x" * 1000, ts_ms=TS)  # 1,000 characters, the record over 1,024 bytes
        with pytest.raises(UndeliveredError) as raised:
            producer.flush()
        assert raised.value.count == 1
        assert type(raised.value.first).__name__ == "MessageSizeTooLargeError"
        producer.flush()  # reported once: the next flush covers only what was sent after it
    finally:
        producer.close()


def test_produce_command_with_a_pseudonym_key_sends_the_alias_and_never_the_raw_id(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """With ``--pseudonym-key-file`` the key and ``user_id`` a consumer reads are the alias; every other field,
    the producer's own included, is the line's."""
    settings = make_settings()
    key_file = tmp_path / "pseudonym.key"
    key_file.write_bytes(b"0123456789abcdef0123456789abcdef")
    line = {"schema": 1, "event_id": "e1", "user_id": "alice@example.com", "type": "browse", "ts": TS}
    line |= {"item_id": "i1", "coupon": {"x": 1}}
    events = tmp_path / "events.jsonl"
    events.write_bytes(json.dumps(line).encode() + b"\n")

    flags = ["--kafka-bootstrap", settings.kafka_bootstrap, "--topic-prefix", settings.topic_prefix]
    assert cli_main(["produce", str(events), *flags, "--pseudonym-key-file", str(key_file)]) == 0

    alias = Pseudonymiser(key_file.read_bytes())("alice@example.com")
    [(key, value)] = _input_topics(settings)["browse"]
    assert key == alias.encode() and value is not None
    assert json.loads(value) == {**line, "user_id": alias}
    assert b"alice" not in value + key


def _input_topics(settings: Settings) -> dict[str, list[tuple[bytes | None, bytes | None]]]:
    """(key, value) of every record on each input topic, read to its end offsets."""
    return {
        kind: [
            (key, value) for key, value, _ in all_records(settings.kafka_bootstrap, settings.topic(f"events.{kind}"))
        ]
        for kind in ("browse", "search", "purchase")
    }
