"""Producer SDK: send contract-v1 events to Kafka, validated before they leave the process."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

from kafka import KafkaProducer
from kafka.errors import KafkaError

from streams.client.pseudonym import Pseudonymiser, is_pseudonym
from streams.client.security import kafka_client_options
from streams.contract.decoder import (
    ContractRejectionError,
    InvalidEventError,
    Reason,
    Rejection,
    decode_event,
    id_problem,
)
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
    event_to_dict,
    new_event_id,
)
from streams.contract.feedback import Impression, InvalidImpressionError, decode_impression, encode_impression
from streams.contract.topics import ERASURE, IMPRESSIONS, input_topic
from streams.settings import Settings

M = TypeVar("M")
"""A contract message type (an erasure request, an impression)."""


def now_ms() -> int:
    """Wall-clock time in milliseconds since the epoch: the default event time of a new event."""
    return time.time_ns() // 1_000_000


def _common_fields(user_id: str, ts_ms: int | None, session_id: str | None, event_id: str | None) -> CommonFields:
    """The shared fields of a new event, with the SDK's defaults: now, and a fresh UUID."""
    return {
        # Only an absent id is made here: an empty one is the caller's mistake, which the contract check refuses.
        "event_id": new_event_id() if event_id is None else event_id,
        "user_id": user_id,
        "ts_ms": now_ms() if ts_ms is None else ts_ms,
        "session_id": session_id,
    }


_BEYOND_EVERY_BOUND = str(10**32)
"""The stand-in for an integer too long for Python to write: every integer field's bound is far below it, and the
decoder reads such a literal as this number too."""


def _checked_json(value: object) -> str:
    """The JSON text of one field's value, written so that the decoder judges it as it would judge the value itself.

    A string with a lone surrogate is escaped (the decoder then names the field). A value JSON has no literal for
    is replaced by one the decoder rejects for the same fault: NaN or an infinity by 1e400 (read as infinite, so
    not finite), an integer too long for Python to write by one beyond every bound, anything else (a ``Decimal``,
    a set, a list nested too deep to write) by an empty object, which no field of the contract may be.
    """
    try:
        return json.dumps(value, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError):  # RecursionError: nested beyond what json can write
        pass
    if isinstance(value, float):
        return "1e400"
    if isinstance(value, int) and not isinstance(value, bool):
        return ("-" if value < 0 else "") + _BEYOND_EVERY_BOUND
    return "{}"


def _checked_event(event: Event, now: int) -> tuple[bytes, Event]:
    """The wire bytes of ``event`` and the event the worker's decoder reads from them, checked against the clock
    ``now``; raises :class:`InvalidEventError` (reason and field named) for an event the worker would reject, of
    whatever Python types its fields are."""
    document = event_to_dict(event)
    try:
        # The wire format of encode_event, but NaN and infinity refused rather than written.
        payload = json.dumps(document, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
    except (TypeError, ValueError, RecursionError):  # UnicodeEncodeError (a lone surrogate) is a ValueError
        fields = ",".join(f"{json.dumps(name)}:{_checked_json(value)}" for name, value in document.items())
        payload = f"{{{fields}}}".encode()
    checked = decode_event(payload, None, topic_type=event.type, now_ms=now)
    if isinstance(checked, Rejection):
        raise InvalidEventError(checked)
    return payload, checked


def _is_valid_id(user_id: object) -> bool:
    """Whether the decoder accepts ``user_id`` as an id (by its own rules: a string of 1 to 256 code points, one of
    them not a space, without lone surrogates)."""
    return isinstance(user_id, str) and id_problem(user_id) is None


def _user_id_rejection(user_id: object) -> Rejection | None:
    """Why ``user_id`` cannot be a message's user id (absent, not a string, refused by the contract), or None."""
    if user_id is None:
        return Rejection(Reason.MISSING_FIELD, "field 'user_id' is required")
    if not isinstance(user_id, str):
        return Rejection(Reason.WRONG_TYPE, "field 'user_id' must be a string")
    problem = id_problem(user_id)
    return None if problem is None else Rejection(Reason.INVALID_VALUE, problem)


def _encoded(encode: Callable[[M], bytes], message: M, error: type[ContractRejectionError]) -> bytes:
    """``encode(message)``; raises ``error`` (the contract's rejection) for a field JSON cannot hold (a lone
    surrogate, a value that is not a string or a number), instead of the encoder's own TypeError or ValueError."""
    try:
        return encode(message)
    except (TypeError, ValueError, RecursionError) as exc:  # RecursionError: a value nested beyond json's depth
        raise error(Rejection(Reason.INVALID_VALUE, f"a field cannot be encoded: {type(exc).__name__}")) from None


def _with_user_id(value: bytes, user_id: str) -> bytes:
    """The JSON object of an accepted message encoded again with another ``user_id``, every other field kept."""
    try:
        obj = json.loads(value)
        obj["user_id"] = user_id
        try:
            return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
        except UnicodeEncodeError:
            # A lone surrogate escape (\ud800) in a field of the producer's own, which the line carried escaped and
            # the decoder accepts there: escaped again, the field keeps the value it had.
            return json.dumps(obj, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()
    except ValueError:
        # Valid for the decoder, which ignores unknown fields, but not writable again: an integer of more than
        # 4300 digits, or a number beyond the largest float, in a field of the producer's own.
        raise InvalidEventError(
            Rejection(Reason.INVALID_VALUE, "a number in the message cannot be encoded again with the pseudonym")
        ) from None


LINGER_MS = 5
"""Milliseconds the producer gathers events before it sends a request: a few ms of latency for far fewer
produce requests at the broker."""


class UndeliveredError(KafkaError):  # type: ignore[misc]  # kafka-python is untyped
    """Records sent since the last flush that the brokers did not acknowledge: ``count`` of them, the first
    failure's exception as ``first`` (kafka-python's error; it names no record's content)."""

    def __init__(self, count: int, first: BaseException | None) -> None:
        self.count = count
        self.first = first
        reason = f"{type(first).__name__}: {first}" if first is not None else "unknown"
        super().__init__(f"{count} record(s) not delivered (first failure {reason})")


class _DeliveryFailures:
    """Failed deliveries since the last look, counted from kafka-python's I/O thread (its futures' errbacks)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0
        self._first: BaseException | None = None

    def record(self, error: BaseException) -> None:
        """An errback: one record failed with ``error``."""
        with self._lock:
            self._count += 1
            if self._first is None:
                self._first = error

    def take(self) -> tuple[int, BaseException | None]:
        """The failures since the last call, and forget them."""
        with self._lock:
            taken = (self._count, self._first)
            self._count, self._first = 0, None
        return taken


class EventProducer:
    """Sends browse, search and purchase events, keyed by ``user_id``, to the topic of their type.

    Each event is encoded and run through the same decoder the worker uses, so an event the worker would
    reject (whatever the Python types of its fields) raises :class:`InvalidEventError` here and is not sent.
    Delivery is acks=all with idempotence. ``send`` is asynchronous: call :meth:`flush` (or use the producer as
    a context manager) before exiting.
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
            "linger_ms": LINGER_MS,
            "client_id": "profilestream-producer",
        }
        config.update(kafka_config)
        self._topic_prefix = topic_prefix
        self._pseudonymiser = pseudonymiser
        self._producer = KafkaProducer(bootstrap_servers=bootstrap_servers, **config)
        self._failures = _DeliveryFailures()

    @classmethod
    def from_settings(cls, settings: Settings, **kafka_config: Any) -> EventProducer:
        """A producer for the settings' cluster, topic prefix, security (TLS, SASL) and pseudonym key."""
        options = {**kafka_client_options(settings), **kafka_config}
        pseudonymiser = Pseudonymiser.from_secret(settings.pseudonym_key, settings.pseudonym_key_file)
        return cls(settings.kafka_bootstrap, topic_prefix=settings.topic_prefix, pseudonymiser=pseudonymiser, **options)

    def user_key(self, user_id: str) -> str:
        """The id under which this producer sends ``user_id``: its pseudonym if pseudonymising, else itself.

        An id the contract rejects (empty, too long, not a string) is returned as it is: the event's check then
        refuses it, where its pseudonym would be a valid id.
        """
        if self._pseudonymiser is None or not _is_valid_id(user_id):
            return user_id
        return self._pseudonymiser(user_id)

    def send(self, event: Event) -> Any:
        """Validate and send one event; returns kafka-python's future of the record metadata.

        Sends the contract's fields only (the event classes have no others); :meth:`send_json` sends an event with
        fields of the producer's own.
        """
        if self._pseudonymiser is not None:
            # The typed helpers already made the pseudonym, which maps to itself; an event built by the caller is
            # copied once here. An id the contract rejects stays as it is, for the check below to refuse.
            user_id = self.user_key(event.user_id)
            if user_id is not event.user_id:
                event = dataclasses.replace(event, user_id=user_id)
        payload, checked = _checked_event(event, now_ms())
        topic = f"{self._topic_prefix}{input_topic(checked.type)}"
        return self._send(topic, payload, checked.user_id.encode())

    def send_json(self, value: bytes | bytearray) -> Any:
        """Validate and send one event given as its JSON bytes (a line of a JSON-lines file, say), fields of the
        producer's own included: keyed by its ``user_id``, to the topic of its ``type``, with the checks and
        delivery of :meth:`send`. The bytes are sent as they are; with a pseudonymiser the object is encoded again
        with the pseudonym as ``user_id``, every other field kept. Returns kafka-python's future."""
        if not isinstance(value, bytes | bytearray):
            # The decoder takes bytes; a str would fail inside it and be reported as a decoder bug.
            raise TypeError(f"send_json takes the event's JSON as bytes, not {type(value).__name__}")
        value = bytes(value)
        now = now_ms()
        checked = decode_event(value, None, now_ms=now)
        if isinstance(checked, Rejection):
            raise InvalidEventError(checked)
        if self._pseudonymiser is not None and not is_pseudonym(checked.user_id):
            value = _with_user_id(value, self._pseudonymiser(checked.user_id))
            checked = decode_event(value, None, now_ms=now)
            if isinstance(checked, Rejection):
                # The line was valid as written: say that the pseudonym made it invalid (a longer id, say).
                detail = f"{checked.detail} (with the pseudonym as user_id)"
                raise InvalidEventError(Rejection(checked.reason, detail))
        topic = f"{self._topic_prefix}{input_topic(checked.type)}"
        return self._send(topic, value, checked.user_id.encode())

    def send_raw(self, payload: bytes, *, key: bytes | None, topic_type: str) -> Any:
        """Send already-encoded bytes unvalidated: for replaying dead letters and for tests of bad input."""
        return self._send(f"{self._topic_prefix}{input_topic(topic_type)}", payload, key)

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
        rejection = _user_id_rejection(user_id)
        if rejection is not None:
            raise InvalidErasureError(rejection)
        user_id = self.user_key(user_id)
        request = ErasureRequest(
            request_id=request_id or new_request_id(), user_id=user_id, requested_at_ms=now_ms(), reason=reason
        )
        payload = _encoded(encode_erasure, request, InvalidErasureError)
        key = user_id.encode()
        checked = decode_erasure(payload, key, now_ms=now_ms())
        if isinstance(checked, Rejection):
            raise InvalidErasureError(checked)
        future = self._send(f"{self._topic_prefix}{ERASURE}", payload, key)
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
        rejection = _user_id_rejection(impression.user_id)
        if rejection is not None:
            raise InvalidImpressionError(rejection)
        if self._pseudonymiser is not None:
            impression = dataclasses.replace(impression, user_id=self._pseudonymiser(impression.user_id))
        payload = _encoded(encode_impression, impression, InvalidImpressionError)
        key = impression.user_id.encode()
        checked = decode_impression(payload, key, now_ms=now_ms())
        if isinstance(checked, Rejection):
            raise InvalidImpressionError(checked)
        return self._send(f"{self._topic_prefix}{IMPRESSIONS}", payload, key)

    def _send(self, topic: str, value: bytes, key: bytes | None) -> Any:
        future = self._producer.send(topic, value=value, key=key)
        future.add_errback(self._failures.record)
        return future

    def flush(self, timeout_s: float | None = None) -> None:
        """Block until every record sent so far is acknowledged by the brokers or has failed; raises
        :class:`UndeliveredError` if any record sent since the previous flush failed (refused by the broker, or
        not acknowledged within kafka-python's ``delivery_timeout_ms``). Each send's future says which."""
        self._producer.flush(timeout=timeout_s)
        failed, first = self._failures.take()
        if failed:
            raise UndeliveredError(failed, first)

    def close(self, timeout_s: float | None = None) -> None:
        """Flush and release the connection; raises :class:`UndeliveredError` as :meth:`flush` does (the connection
        is released all the same)."""
        try:
            self.flush(timeout_s)
        finally:
            self._producer.close(timeout=timeout_s)

    def __enter__(self) -> EventProducer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
            return
        # An error is on its way out already: release the connection without hiding it behind a delivery failure.
        with contextlib.suppress(KafkaError):
            self.close()
