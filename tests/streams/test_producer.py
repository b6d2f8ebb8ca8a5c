"""The producer SDK against the real broker: typed helpers, keys and topics, validation before sending."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from kafka import KafkaConsumer

from streams.client.producer import EventProducer
from streams.contract.decoder import InvalidEventError, Reason, decode_event
from streams.contract.events import BrowseEvent, PurchaseEvent, SearchEvent
from streams.settings import Settings
from tests.harness import wait_until

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
