"""The one decoder of input events: bytes from Kafka in, an event or a rejection with a reason code out.

Errors are data here: a malformed message is never an exception in the worker, it is a :class:`Rejection`
that goes to the dead-letter topic. The reason codes are a closed set, so they are safe metric labels.
Details never quote field values, since those may be personal data.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from streams.contract import (
    EVENT_TYPES,
    SCHEMA_VERSION,
    BrowseEvent,
    CommonFields,
    Event,
    PurchaseEvent,
    SearchEvent,
)

MAX_EVENT_BYTES = 64 * 1024
MAX_ID_CHARS = 256
MAX_TEXT_CHARS = 1024
# Event times outside [2000-01-01, 2100-01-01) are taken for unit mistakes (seconds or microseconds).
MIN_TS_MS = 946_684_800_000
MAX_TS_MS = 4_102_444_800_000
# An event from the future would move its user's event-time clock forward and make every later event "too late".
MAX_FUTURE_SKEW_MS = 24 * 3600 * 1000


class Reason(StrEnum):
    """Why a message was rejected. Stable codes: operators alert and dashboards group on them."""

    TOO_LARGE = "too_large"
    NOT_UTF8 = "not_utf8"
    NOT_JSON = "not_json"
    NOT_OBJECT = "not_object"
    UNSUPPORTED_SCHEMA = "unsupported_schema"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    UNKNOWN_EVENT_TYPE = "unknown_event_type"
    TYPE_TOPIC_MISMATCH = "type_topic_mismatch"
    MISSING_KEY = "missing_key"
    KEY_MISMATCH = "key_mismatch"
    INVALID_VALUE = "invalid_value"
    TS_OUT_OF_RANGE = "ts_out_of_range"
    TOO_LATE = "too_late"
    PROCESSING_ERROR = "processing_error"


@dataclass(frozen=True, slots=True)
class Rejection:
    """A message that is not a valid event: the reason code and a detail free of personal data."""

    reason: Reason
    detail: str


class _InvalidError(Exception):
    """Internal signal from the field checks to :func:`decode_event`."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _string(obj: dict[str, Any], name: str, *, required: bool = True, max_chars: int = MAX_ID_CHARS) -> str | None:
    value = obj.get(name)
    if value is None:
        if required:
            raise _InvalidError(Reason.MISSING_FIELD, f"field '{name}' is required")
        return None
    if not isinstance(value, str):
        raise _InvalidError(Reason.WRONG_TYPE, f"field '{name}' must be a string")
    if not value.strip():
        raise _InvalidError(Reason.INVALID_VALUE, f"field '{name}' must not be empty")
    if len(value) > max_chars:
        raise _InvalidError(Reason.INVALID_VALUE, f"field '{name}' is longer than {max_chars} characters")
    return value


def _required_string(obj: dict[str, Any], name: str, max_chars: int = MAX_ID_CHARS) -> str:
    value = _string(obj, name, max_chars=max_chars)
    assert value is not None  # required=True never returns None
    return value


def _integer(obj: dict[str, Any], name: str) -> int:
    value = obj.get(name)
    if value is None:
        raise _InvalidError(Reason.MISSING_FIELD, f"field '{name}' is required")
    # bool is an int subclass in Python; in JSON it is not a number.
    if isinstance(value, bool) or not isinstance(value, int):
        raise _InvalidError(Reason.WRONG_TYPE, f"field '{name}' must be an integer")
    return value


def _number(obj: dict[str, Any], name: str) -> float:
    value = obj.get(name)
    if value is None:
        raise _InvalidError(Reason.MISSING_FIELD, f"field '{name}' is required")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _InvalidError(Reason.WRONG_TYPE, f"field '{name}' must be a number")
    if not math.isfinite(value):
        raise _InvalidError(Reason.INVALID_VALUE, f"field '{name}' must be finite")
    return float(value)


def _parse(obj: dict[str, Any], key: bytes | None, topic_type: str | None, now_ms: int | None) -> Event:
    schema = obj.get("schema")
    if isinstance(schema, bool) or schema != SCHEMA_VERSION:
        raise _InvalidError(Reason.UNSUPPORTED_SCHEMA, f"schema must be {SCHEMA_VERSION}")
    event_type = obj.get("type")
    if event_type is None:
        raise _InvalidError(Reason.MISSING_FIELD, "field 'type' is required")
    if event_type not in EVENT_TYPES:
        raise _InvalidError(Reason.UNKNOWN_EVENT_TYPE, "type must be one of browse, search, purchase")
    if topic_type is not None and event_type != topic_type:
        raise _InvalidError(Reason.TYPE_TOPIC_MISMATCH, f"a {event_type} event on the {topic_type} topic")
    event_id = _required_string(obj, "event_id")
    user_id = _required_string(obj, "user_id")
    ts_ms = _integer(obj, "ts")
    if not MIN_TS_MS <= ts_ms < MAX_TS_MS:
        raise _InvalidError(Reason.TS_OUT_OF_RANGE, "ts must be milliseconds since the epoch, years 2000 to 2099")
    if now_ms is not None and ts_ms > now_ms + MAX_FUTURE_SKEW_MS:
        raise _InvalidError(Reason.TS_OUT_OF_RANGE, "ts is more than a day in the future")
    session_id = _string(obj, "session_id", required=False)
    if key is not None and key != user_id.encode():
        raise _InvalidError(Reason.KEY_MISMATCH, "message key differs from user_id")
    common: CommonFields = {"event_id": event_id, "user_id": user_id, "ts_ms": ts_ms, "session_id": session_id}
    if event_type == "search":
        return SearchEvent(query=_required_string(obj, "query", MAX_TEXT_CHARS), **common)
    item_id = _required_string(obj, "item_id")
    category = _string(obj, "category", required=False)
    if event_type == "browse":
        return BrowseEvent(item_id=item_id, category=category, **common)
    quantity = _integer(obj, "quantity")
    if quantity <= 0:
        raise _InvalidError(Reason.INVALID_VALUE, "quantity must be positive")
    price = _number(obj, "price")
    if price < 0:
        raise _InvalidError(Reason.INVALID_VALUE, "price must not be negative")
    currency = _required_string(obj, "currency")
    if len(currency) != 3 or not currency.isascii() or not currency.isupper():
        raise _InvalidError(Reason.INVALID_VALUE, "currency must be an ISO 4217 code such as EUR")
    return PurchaseEvent(
        item_id=item_id, category=category, quantity=quantity, price=price, currency=currency, **common
    )


def decode_event(
    value: bytes | None,
    key: bytes | None = None,
    *,
    topic_type: str | None = None,
    require_key: bool = False,
    now_ms: int | None = None,
) -> Event | Rejection:
    """Decode one message into an event, or say why it is not one.

    ``key`` is checked against ``user_id`` when given; ``topic_type`` is the type of the topic the message came
    from, which must match the event's type. ``require_key`` rejects messages without a key (the worker sets it:
    an unkeyed message may have landed on a partition that does not own its user). ``now_ms`` enables the
    check against event times more than a day in the future.
    """
    if value is None:
        return Rejection(Reason.MISSING_FIELD, "message has no value")
    if len(value) > MAX_EVENT_BYTES:
        return Rejection(Reason.TOO_LARGE, f"message is larger than {MAX_EVENT_BYTES} bytes")
    if require_key and not key:
        return Rejection(Reason.MISSING_KEY, "message has no key; producers must key by user_id")
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return Rejection(Reason.NOT_UTF8, "message is not UTF-8")
    try:
        obj = json.loads(text)
    except ValueError:
        return Rejection(Reason.NOT_JSON, "message is not JSON")
    if not isinstance(obj, dict):
        return Rejection(Reason.NOT_OBJECT, "message is not a JSON object")
    try:
        return _parse(obj, key, topic_type, now_ms)
    except _InvalidError as invalid:
        return Rejection(invalid.reason, invalid.detail)


class InvalidEventError(ValueError):
    """An event that the contract rejects; raised by the producer SDK before anything is sent.

    Fix the event named by ``reason`` and ``detail``; the message was not sent.
    """

    def __init__(self, rejection: Rejection) -> None:
        super().__init__(f"{rejection.reason.value}: {rejection.detail}")
        self.reason = rejection.reason
        self.detail = rejection.detail
