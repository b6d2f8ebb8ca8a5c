"""Producer SDK: send contract-v1 events to Kafka, validated before they leave the process."""

from __future__ import annotations

import dataclasses
import time
from types import TracebackType
from typing import Any

from kafka import KafkaProducer

from streams.client.pseudonym import Pseudonymiser, is_pseudonym
from streams.client.security import kafka_client_options
from streams.contract.decoder import InvalidEventError, Rejection, decode_event
from streams.contract.erasure import (
    ErasureReason,
    ErasureRequest,
    InvalidErasureError,
    decode_erasure,
    encode_erasure,
    new_request_id,
)
from streams.contract.events import (
    BrowseEvent,
    CommonFields,
    Event,
    PurchaseEvent,
    SearchEvent,
    encode_event,
    new_event_id,
)
from streams.contract.feedback import Impression, InvalidImpressionError, decode_impression, encode_impression
from streams.contract.topics import ERASURE, IMPRESSIONS, input_topic
from streams.settings import Settings


def now_ms() -> int:
    """Wall-clock time in milliseconds since the epoch: the default event time of a new event."""
    return time.time_ns() // 1_000_000


def _common_fields(user_id: str, ts_ms: int | None, session_id: str | None, event_id: str | None) -> CommonFields:
    """The shared fields of a new event, with the SDK's defaults: now, and a fresh UUID."""
    return {
        "event_id": event_id or new_event_id(),
        "user_id": user_id,
        "ts_ms": now_ms() if ts_ms is None else ts_ms,
        "session_id": session_id,
    }


class EventProducer:
    """Sends browse, search and purchase events, keyed by ``user_id``, to the topic of their type.

    Each event is encoded and run through the same decoder the worker uses, so an event the worker would
    reject raises :class:`InvalidEventError` here and is not sent. Delivery is acks=all with idempotence.
    ``send`` is asynchronous: call :meth:`flush` (or use the producer as a context manager) before exiting.
    With a ``pseudonymiser`` (off by default; :mod:`streams.client.pseudonym`) every user id the producer sends,
    in events, impressions and erasure requests, is replaced by its keyed pseudonym before it leaves the process.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        topic_prefix: str = "",
        pseudonymiser: Pseudonymiser | None = None,
        **kafka_config: Any,
    ) -> None:
        config: dict[str, Any] = {
            "acks": "all",
            "enable_idempotence": True,
            "linger_ms": 5,
            "client_id": "profilestream-producer",
        }
        config.update(kafka_config)
        self._topic_prefix = topic_prefix
        self._pseudonymiser = pseudonymiser
        self._producer = KafkaProducer(bootstrap_servers=bootstrap_servers, **config)

    @classmethod
    def from_settings(cls, settings: Settings, **kafka_config: Any) -> EventProducer:
        """A producer for the settings' cluster, topic prefix, security (TLS, SASL) and pseudonym key."""
        options = {**kafka_client_options(settings), **kafka_config}
        pseudonymiser = Pseudonymiser.from_secret(settings.pseudonym_key, settings.pseudonym_key_file)
        return cls(settings.kafka_bootstrap, topic_prefix=settings.topic_prefix, pseudonymiser=pseudonymiser, **options)

    def user_key(self, user_id: str) -> str:
        """The id under which this producer sends ``user_id``: its pseudonym if pseudonymising, else itself."""
        return user_id if self._pseudonymiser is None else self._pseudonymiser(user_id)

    def send(self, event: Event) -> Any:
        """Validate and send one event; returns kafka-python's future of the record metadata."""
        if self._pseudonymiser is not None and not is_pseudonym(event.user_id):
            # The typed helpers already made the pseudonym; an event built by the caller is copied once here.
            event = dataclasses.replace(event, user_id=self._pseudonymiser(event.user_id))
        payload = encode_event(event)
        key = event.user_id.encode()
        checked = decode_event(payload, key, topic_type=event.type, now_ms=now_ms())
        if isinstance(checked, Rejection):
            raise InvalidEventError(checked)
        topic = f"{self._topic_prefix}{input_topic(event.type)}"
        return self._producer.send(topic, value=payload, key=key)

    def send_raw(self, payload: bytes, *, key: bytes | None, topic_type: str) -> Any:
        """Send already-encoded bytes unvalidated: for replaying dead letters and for tests of bad input."""
        return self._producer.send(f"{self._topic_prefix}{input_topic(topic_type)}", value=payload, key=key)

    def request_erasure(
        self,
        user_id: str,
        *,
        reason: ErasureReason = "user_request",
        request_id: str | None = None,
        wait_s: float | None = None,
    ) -> str:
        """Ask the workers to delete the user's state and publish a tombstone for their profile.

        The request (contract: :mod:`streams.contract.erasure`) is checked by the worker's own decoder before it is
        sent; an invalid one raises :class:`InvalidErasureError`. Returns the request id (a fresh UUID unless given),
        which the worker's log names when it executes the request. Call :meth:`flush` to wait for delivery, or
        give ``wait_s`` to wait for the broker's acknowledgement of this request: a refusal (a principal without
        the ``eraser`` role's ACL, say) then raises the broker's ``KafkaError`` instead of passing unnoticed.
        """
        user_id = self.user_key(user_id)
        request = ErasureRequest(
            request_id=request_id or new_request_id(), user_id=user_id, requested_at_ms=now_ms(), reason=reason
        )
        payload = encode_erasure(request)
        key = user_id.encode()
        checked = decode_erasure(payload, key, now_ms=now_ms())
        if isinstance(checked, Rejection):
            raise InvalidErasureError(checked)
        future = self._producer.send(f"{self._topic_prefix}{ERASURE}", value=payload, key=key)
        if wait_s is not None:
            future.get(timeout=wait_s)
        return request.request_id

    def browse(
        self,
        user_id: str,
        item_id: str,
        *,
        category: str | None = None,
        ts_ms: int | None = None,
        session_id: str | None = None,
        event_id: str | None = None,
        request_id: str | None = None,
    ) -> Any:
        """Send a browse event (``ts_ms`` defaults to now, ``event_id`` to a fresh UUID); ``request_id`` names the
        recommendation response it is a click on (the ``request_id`` of its impression)."""
        return self.send(
            BrowseEvent(
                **_common_fields(self.user_key(user_id), ts_ms, session_id, event_id),
                item_id=item_id,
                category=category,
                request_id=request_id,
            )
        )

    def search(
        self,
        user_id: str,
        query: str,
        *,
        ts_ms: int | None = None,
        session_id: str | None = None,
        event_id: str | None = None,
    ) -> Any:
        """Send a search event."""
        return self.send(
            SearchEvent(
                **_common_fields(self.user_key(user_id), ts_ms, session_id, event_id),
                query=query,
            )
        )

    def purchase(
        self,
        user_id: str,
        item_id: str,
        *,
        quantity: int,
        price: float | None = None,
        currency: str | None = None,
        category: str | None = None,
        ts_ms: int | None = None,
        session_id: str | None = None,
        event_id: str | None = None,
        request_id: str | None = None,
    ) -> Any:
        """Send a purchase event of ``quantity`` units at unit ``price``; give both price and currency or neither.
        ``request_id``: the recommendation response it is a click on, if any."""
        return self.send(
            PurchaseEvent(
                **_common_fields(self.user_key(user_id), ts_ms, session_id, event_id),
                item_id=item_id,
                category=category,
                quantity=quantity,
                price=price,
                currency=currency,
                request_id=request_id,
            )
        )

    def impression(self, impression: Impression) -> Any:
        """Validate and send one impression (what a recommender showed) to the impression topic; an invalid one
        raises :class:`InvalidImpressionError` and is not sent. Returns kafka-python's future."""
        if self._pseudonymiser is not None:
            impression = dataclasses.replace(impression, user_id=self._pseudonymiser(impression.user_id))
        payload = encode_impression(impression)
        key = impression.user_id.encode()
        checked = decode_impression(payload, key, now_ms=now_ms())
        if isinstance(checked, Rejection):
            raise InvalidImpressionError(checked)
        return self._producer.send(f"{self._topic_prefix}{IMPRESSIONS}", value=payload, key=key)

    def flush(self, timeout_s: float | None = None) -> None:
        """Block until every event sent so far is acknowledged by the brokers."""
        self._producer.flush(timeout=timeout_s)

    def close(self, timeout_s: float | None = None) -> None:
        """Flush and release the connection."""
        self._producer.close(timeout=timeout_s)

    def __enter__(self) -> EventProducer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
