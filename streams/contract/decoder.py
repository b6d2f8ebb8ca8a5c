"""The one decoder of input events: bytes from Kafka in, an event or a rejection with a reason code out.

Errors are data here: a malformed message is never an exception in the worker, it is a :class:`Rejection`
that goes to the dead-letter topic. :func:`decode_event` is total: whatever bytes, key and topic it is given,
it returns, and an event it returns can be hashed, stored and encoded (its strings are valid Unicode, its numbers
within the contract's bounds in :mod:`streams.contract.events`). The reason codes are a closed set, so they are safe
metric labels. Details never quote field values, since those may be personal data.
"""

from __future__ import annotations

import json
import logging
import math
import re
import traceback
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from streams.contract.events import (
    CURRENCY_CHARS,
    EVENT_TYPES,
    MAX_EVENT_BYTES,
    MAX_FUTURE_SKEW_MS,
    MAX_ID_CHARS,
    MAX_JSON_DEPTH,
    MAX_PRICE,
    MAX_QUANTITY,
    MAX_TEXT_CHARS,
    MAX_TS_MS,
    MIN_TS_MS,
    SCHEMA_VERSION,
    BrowseEvent,
    CommonFields,
    Event,
    PurchaseEvent,
    SearchEvent,
)

log = logging.getLogger(__name__)


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
    WRONG_PARTITION = "wrong_partition"
    """The message is not on the partition the documented partitioner (murmur2 of the key) gives its key."""
    PROCESSING_ERROR = "processing_error"
    UNDECODABLE = "undecodable"
    """The decoder itself failed on the message (a bug in the decoder, never a property of the contract)."""


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


class _NotInteroperableError(ValueError):
    """Valid JSON syntax that parsers read differently (duplicate keys, NaN and Infinity): rejected as not JSON."""


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # With a repeated key, Python keeps the last value and other parsers the first: the producer's and the
    # worker's readings of the same message could differ, so the message has no meaning to accept.
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise _NotInteroperableError("an object has a duplicate key")
    return obj


def _reject_constant(name: str) -> Any:
    # Python's json accepts NaN, Infinity and -Infinity; JSON (RFC 8259) does not, nor do other parsers.
    raise _NotInteroperableError(f"{name} is not a JSON value")


_INT_DIGITS = 32
_HUGE_INT: int = 10**_INT_DIGITS


def _bounded_int(text: str) -> int:
    # Every integer field of the contract is bounded far below 10**32, and JSON forbids leading zeros: a longer
    # literal is replaced by +-10**32, which still fails a known field's bound with that field's reason, while an
    # unknown field (ignored) does not make the event invalid.
    if len(text) <= _INT_DIGITS:
        return int(text)
    return -_HUGE_INT if text.startswith("-") else _HUGE_INT


_JSON = json.JSONDecoder(object_pairs_hook=_unique_object, parse_constant=_reject_constant)
_JSON_BOUNDED_INTS = json.JSONDecoder(
    object_pairs_hook=_unique_object, parse_constant=_reject_constant, parse_int=_bounded_int
)


def _parse_json(text: str) -> Any:
    """The JSON value of `text`; raises ValueError (or RecursionError) for text that is not acceptable JSON."""
    try:
        return _JSON.decode(text)
    except ValueError as exc:
        if isinstance(exc, json.JSONDecodeError | _NotInteroperableError):
            raise
        # Python refuses integer literals of more than 4300 digits with a plain ValueError. Only such a message is
        # parsed again with bounded integers: the common case keeps the C integer parser.
        return _JSON_BOUNDED_INTS.decode(text)


# A string runs to its closing quote or, unterminated, to the end of the text. Without the second ending, each
# quote of an unterminated string started a scan to the end that failed, and the next quote another: a 64 KiB
# message of escaped quotes behind 33 brackets held a worker for half a minute (quadratic). With it every scan
# succeeds and the text is read once.
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)', re.DOTALL)
_JSON_BRACKET = re.compile(r"[\[\]{}]")


def _too_deep(text: str) -> bool:
    """Whether the JSON text nests arrays and objects deeper than ``MAX_JSON_DEPTH``.

    Checked before parsing, since the parser recurses per level: a limit of our own makes the verdict independent
    of the caller's stack depth and the interpreter's recursion limit. Callers first count brackets (at C speed):
    text with at most ``MAX_JSON_DEPTH`` of them cannot nest deeper.
    """
    depth = 0
    # Brackets inside strings do not nest; for text that is not JSON the count is wrong, but so is the text.
    for bracket in _JSON_BRACKET.findall(_JSON_STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        if depth > MAX_JSON_DEPTH:
            return True
    return False


def _string(obj: dict[str, Any], name: str, *, required: bool = True, max_chars: int = MAX_ID_CHARS) -> str | None:
    value = obj.get(name)
    if value is None:
        if required:
            raise _InvalidError(Reason.MISSING_FIELD, f"field '{name}' is required")
        return None
    if not isinstance(value, str):
        raise _InvalidError(Reason.WRONG_TYPE, f"field '{name}' must be a string")
    if len(value) > max_chars:
        raise _InvalidError(Reason.INVALID_VALUE, f"field '{name}' is longer than {max_chars} characters")
    if not value.isascii():
        # A JSON escape of a lone surrogate ("\ud800") parses to a str that cannot be encoded to UTF-8: it would
        # fail later, in the message key comparison, the hashing of ids or a dead letter's re-encoding.
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise _InvalidError(Reason.INVALID_VALUE, f"field '{name}' has a lone surrogate escape") from None
    if not value.strip():
        raise _InvalidError(Reason.INVALID_VALUE, f"field '{name}' must not be empty")
    return value


def id_problem(value: str, name: str = "user_id") -> str | None:
    """Why ``value`` is not a valid contract id (empty, blank, too long, a lone surrogate), or None when it is one.

    For services that take ids from elsewhere than an event (an HTTP path): the same rules as the decoder's.
    """
    try:
        _string({name: value}, name)
    except _InvalidError as exc:
        return exc.detail
    return None


def _required_string(obj: dict[str, Any], name: str, max_chars: int = MAX_ID_CHARS) -> str:
    value = _string(obj, name, max_chars=max_chars)
    assert value is not None  # required=True never returns None
    return value


def _integer(obj: dict[str, Any], name: str) -> int:
    value = obj.get(name)
    if value is None:
        raise _InvalidError(Reason.MISSING_FIELD, f"field '{name}' is required")
    # bool is an int subclass in Python; in JSON it is not a number. 1e3 and 2.0 are JSON numbers but written as
    # floats; the contract asks for integer literals.
    if isinstance(value, bool) or not isinstance(value, int):
        raise _InvalidError(Reason.WRONG_TYPE, f"field '{name}' must be an integer")
    return value


def _number(obj: dict[str, Any], name: str) -> float | int:
    value = obj.get(name)
    if value is None:
        raise _InvalidError(Reason.MISSING_FIELD, f"field '{name}' is required")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _InvalidError(Reason.WRONG_TYPE, f"field '{name}' must be a number")
    # An overflowing literal such as 1e400 parses to inf. Integers stay ints: they are compared exactly, since
    # math.isfinite of a huge int raises OverflowError.
    if isinstance(value, float) and not math.isfinite(value):
        raise _InvalidError(Reason.INVALID_VALUE, f"field '{name}' must be finite")
    return value


def _purchase(
    obj: dict[str, Any], item_id: str, category: str | None, request_id: str | None, common: CommonFields
) -> PurchaseEvent:
    quantity = _integer(obj, "quantity")
    if not 1 <= quantity <= MAX_QUANTITY:
        raise _InvalidError(Reason.INVALID_VALUE, f"quantity must be an integer from 1 to {MAX_QUANTITY}")
    has_price, has_currency = obj.get("price") is not None, obj.get("currency") is not None
    if not has_price and not has_currency:
        # Free items and producers that do not know the price: the purchase folds with no spend.
        return PurchaseEvent(item_id=item_id, category=category, quantity=quantity, request_id=request_id, **common)
    if has_price != has_currency:
        missing, given = ("currency", "price") if has_price else ("price", "currency")
        raise _InvalidError(
            Reason.MISSING_FIELD, f"field '{missing}' is required when '{given}' is given (give both or neither)"
        )
    price = _number(obj, "price")
    if not 0 <= price <= MAX_PRICE:
        raise _InvalidError(Reason.INVALID_VALUE, f"price must be from 0 to {MAX_PRICE}")
    currency = _required_string(obj, "currency")
    if len(currency) != CURRENCY_CHARS or not (currency.isascii() and currency.isalpha() and currency.isupper()):
        raise _InvalidError(Reason.INVALID_VALUE, "currency must be an ISO 4217 code such as EUR")
    return PurchaseEvent(
        item_id=item_id,
        category=category,
        quantity=quantity,
        price=float(price) + 0.0,  # + 0.0 turns -0.0 into 0.0
        currency=currency,
        request_id=request_id,
        **common,
    )


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
        raise _InvalidError(
            Reason.TS_OUT_OF_RANGE, f"ts is more than {MAX_FUTURE_SKEW_MS // 60_000} minutes in the future"
        )
    session_id = _string(obj, "session_id", required=False)
    if key is not None and key != user_id.encode():
        raise _InvalidError(Reason.KEY_MISMATCH, "message key differs from user_id")
    common: CommonFields = {"event_id": event_id, "user_id": user_id, "ts_ms": ts_ms, "session_id": session_id}
    if event_type == "search":
        return SearchEvent(query=_required_string(obj, "query", MAX_TEXT_CHARS), **common)
    item_id = _required_string(obj, "item_id")
    category = _string(obj, "category", required=False)
    # Optional since contract 1 was first published: a click on a recommendation names the request it came from.
    request_id = _string(obj, "request_id", required=False)
    if event_type == "browse":
        return BrowseEvent(item_id=item_id, category=category, request_id=request_id, **common)
    return _purchase(obj, item_id, category, request_id, common)


def json_object(value: bytes) -> dict[str, Any] | Rejection:
    """The JSON object a message's bytes hold, or why they hold none: not UTF-8, nested too deep, not JSON (or
    JSON that parsers read differently), or JSON that is not an object. Shared by every contract's decoder."""
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return Rejection(Reason.NOT_UTF8, "message is not UTF-8")
    if text.count("[") + text.count("{") > MAX_JSON_DEPTH and _too_deep(text):
        return Rejection(Reason.NOT_JSON, f"message nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        obj = _parse_json(text)
    except _NotInteroperableError as exc:
        return Rejection(Reason.NOT_JSON, f"message is not interoperable JSON: {exc}")
    except json.JSONDecodeError as exc:
        if text.startswith("\ufeff"):
            return Rejection(Reason.NOT_JSON, "message starts with a byte-order mark (UTF-8 has none here)")
        # The parser's own words and where it stopped; never the text around it (it may hold personal data).
        return Rejection(Reason.NOT_JSON, f"message is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")
    except (ValueError, RecursionError):
        return Rejection(Reason.NOT_JSON, "message is not JSON")
    if not isinstance(obj, dict):
        return Rejection(Reason.NOT_OBJECT, "message is not a JSON object")
    return obj


def keyed_json_object(
    value: bytes | None, key: bytes | None, *, what: str, max_bytes: int, no_value: str
) -> tuple[dict[str, Any], bytes] | Rejection:
    """(JSON object, key) of a message keyed by ``user_id`` on a topic other than the inputs (erasure requests,
    impressions), or why it is none: no key, no value (``no_value`` says why), over ``max_bytes``, not a JSON
    object. ``what`` names the message in the details ("an impression")."""
    if not key:
        return Rejection(Reason.MISSING_KEY, f"{what} must be keyed by user_id")
    if value is None:
        return Rejection(Reason.MISSING_FIELD, no_value)
    if len(value) > max_bytes:
        return Rejection(Reason.TOO_LARGE, f"{what} is larger than {max_bytes} bytes")
    obj = json_object(value)
    return obj if isinstance(obj, Rejection) else (obj, key)


def _decode(
    value: bytes | None, key: bytes | None, topic_type: str | None, require_key: bool, now_ms: int | None
) -> Event | Rejection:
    if value is None:
        return Rejection(Reason.MISSING_FIELD, "message has no value")
    if len(value) > MAX_EVENT_BYTES:
        return Rejection(Reason.TOO_LARGE, f"message is larger than {MAX_EVENT_BYTES} bytes")
    if require_key and not key:
        return Rejection(Reason.MISSING_KEY, "message has no key; producers must key by user_id")
    obj = json_object(value)
    if isinstance(obj, Rejection):
        return obj
    try:
        return _parse(obj, key, topic_type, now_ms)
    except _InvalidError as invalid:
        return Rejection(invalid.reason, invalid.detail)


def decode_event(
    value: bytes | None,
    key: bytes | None = None,
    *,
    topic_type: str | None = None,
    require_key: bool = False,
    now_ms: int | None = None,
) -> Event | Rejection:
    """Decode one message into an event, or say why it is not one; never raises.

    ``key`` is checked against ``user_id`` when given; ``topic_type`` is the type of the topic the message came
    from, which must match the event's type. ``require_key`` rejects messages without a key (the worker sets it:
    an unkeyed message may have landed on a partition that does not own its user). ``now_ms`` enables the
    check against event times more than ``MAX_FUTURE_SKEW_MS`` in the future.
    """
    try:
        return _decode(value, key, topic_type, require_key, now_ms)
    except Exception as exc:
        # A bug here must cost only this message (it goes to the dead-letter topic), never the batch. The log
        # has the frames but not the exception's message, which may quote the value.
        log.error(
            "decode_event failed with %s; the message is rejected as undecodable\n%s",
            type(exc).__name__,
            "".join(traceback.format_tb(exc.__traceback__)),
        )
        return Rejection(Reason.UNDECODABLE, f"the decoder failed ({type(exc).__name__})")


class ContractRejectionError(ValueError):
    """A message one of the contracts rejects, raised by the SDK before anything is sent: ``reason`` and
    ``detail`` say what to fix."""

    def __init__(self, rejection: Rejection) -> None:
        super().__init__(f"{rejection.reason.value}: {rejection.detail}")
        self.reason = rejection.reason
        self.detail = rejection.detail


class InvalidEventError(ContractRejectionError):
    """An event that the contract rejects; raised by the producer SDK before anything is sent.

    Fix the event named by ``reason`` and ``detail``; the message was not sent.
    """
