"""Impression contract, version 1: what a recommender showed a user, and the one decoder of impressions.

An impression is a JSON object on ``events.impression``, keyed by the user id (so it lands on the same partition
number as the user's browse and purchase events)::

    {"schema": 1, "type": "impression", "request_id": "<id>", "user_id": "<user>", "ts": <ms>,
     "model_version": "<version>" | null, "source": "profile" | "popular", "items": ["item-12", "item-3"]}

``items`` are the item ids in the order shown (rank 1 first); ``model_version`` is the version the items were
scored with (null for the popularity fallback). A click is a browse or purchase event that carries the
impression's ``request_id`` (an optional field of input contract v1): the feedback consumer joins the two.

The reason codes are those of :class:`streams.contract.decoder.Reason`; details never quote field values.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final, Literal

# One JSON reading for every contract of this package: the same duplicate-key, NaN and depth rules as events.
from streams.contract.decoder import (
    ContractRejectionError,
    Reason,
    Rejection,
    _integer,
    _InvalidError,
    _required_string,
    _string,
    keyed_json_object,
)
from streams.contract.events import MAX_FUTURE_SKEW_MS, MAX_ID_CHARS, MAX_TS_MS, MIN_TS_MS

IMPRESSION_SCHEMA_VERSION: Final = 1
IMPRESSION_TYPE: Final = "impression"
MAX_IMPRESSION_ITEMS: Final = 200
"""Most items one impression lists: the recommender's largest ``k``."""
MAX_IMPRESSION_BYTES: Final = 256 * 1024
"""Largest impression value: 200 item ids of the longest allowed length (256 code points of up to 4 bytes in
UTF-8: 200 KiB) fit with room, and it stays far below the producer's 1,000,000-byte request limit."""

Source = Literal["profile", "popular"]
SOURCES: Final[tuple[Source, ...]] = ("profile", "popular")


@dataclass(frozen=True, slots=True, kw_only=True)
class Impression:
    """One recommendation response as it was shown: ``item_ids`` ranked, rank 1 first."""

    request_id: str
    user_id: str
    ts_ms: int
    model_version: str | None
    source: Source
    item_ids: tuple[str, ...]


def impression_to_dict(impression: Impression) -> dict[str, object]:
    """The JSON object of an impression, as it goes on the wire."""
    return {
        "schema": IMPRESSION_SCHEMA_VERSION,
        "type": IMPRESSION_TYPE,
        "request_id": impression.request_id,
        "user_id": impression.user_id,
        "ts": impression.ts_ms,
        "model_version": impression.model_version,
        "source": impression.source,
        # A string is not a list of ids: kept whole for the decoder to refuse, not split into its characters.
        "items": impression.item_ids if isinstance(impression.item_ids, str | bytes) else list(impression.item_ids),
    }


def encode_impression(impression: Impression) -> bytes:
    """The UTF-8 JSON bytes of an impression."""
    return json.dumps(impression_to_dict(impression), separators=(",", ":"), ensure_ascii=False).encode()


def _items(obj: dict[str, Any]) -> tuple[str, ...]:
    items = obj.get("items")
    if items is None:
        raise _InvalidError(Reason.MISSING_FIELD, "field 'items' is required")
    if not isinstance(items, list):
        raise _InvalidError(Reason.WRONG_TYPE, "field 'items' must be an array of item ids")
    if len(items) > MAX_IMPRESSION_ITEMS:
        raise _InvalidError(Reason.INVALID_VALUE, f"field 'items' lists more than {MAX_IMPRESSION_ITEMS} items")
    if any(item is None for item in items):
        # A null entry is of the wrong type, not a missing field (the array is there).
        raise _InvalidError(Reason.WRONG_TYPE, "field 'items' must hold item ids, not null")
    # Each entry under the item_id rules of the input contract (checked through the same helper).
    return tuple(_required_string({"items[]": item}, "items[]", MAX_ID_CHARS) for item in items)


def _parse(obj: dict[str, Any], key: bytes, now_ms: int | None) -> Impression:
    schema = obj.get("schema")
    if isinstance(schema, bool) or schema != IMPRESSION_SCHEMA_VERSION:
        raise _InvalidError(Reason.UNSUPPORTED_SCHEMA, f"schema must be {IMPRESSION_SCHEMA_VERSION}")
    kind = obj.get("type")
    if kind is None:
        raise _InvalidError(Reason.MISSING_FIELD, "field 'type' is required")
    if kind != IMPRESSION_TYPE:
        raise _InvalidError(Reason.UNKNOWN_EVENT_TYPE, "type must be impression on the impression topic")
    request_id = _required_string(obj, "request_id")
    user_id = _required_string(obj, "user_id")
    if key != user_id.encode():
        raise _InvalidError(Reason.KEY_MISMATCH, "message key differs from user_id")
    ts_ms = _integer(obj, "ts")
    if not MIN_TS_MS <= ts_ms < MAX_TS_MS:
        raise _InvalidError(Reason.TS_OUT_OF_RANGE, "ts must be milliseconds since the epoch, years 2000 to 2099")
    if now_ms is not None and ts_ms > now_ms + MAX_FUTURE_SKEW_MS:
        raise _InvalidError(
            Reason.TS_OUT_OF_RANGE, f"ts is more than {MAX_FUTURE_SKEW_MS // 60_000} minutes in the future"
        )
    source = obj.get("source")
    if source is None:
        raise _InvalidError(Reason.MISSING_FIELD, "field 'source' is required")
    if source not in SOURCES:
        raise _InvalidError(Reason.INVALID_VALUE, "source must be profile or popular")
    model_version = _string(obj, "model_version", required=False)
    if source == "profile" and model_version is None:
        raise _InvalidError(Reason.MISSING_FIELD, "field 'model_version' is required when source is profile")
    return Impression(
        request_id=request_id,
        user_id=user_id,
        ts_ms=ts_ms,
        model_version=model_version,
        source=source,
        item_ids=_items(obj),
    )


def _decode(value: bytes | None, key: bytes | None, now_ms: int | None) -> Impression | Rejection:
    keyed = keyed_json_object(
        value, key, what="an impression", max_bytes=MAX_IMPRESSION_BYTES, no_value="message has no value"
    )
    if isinstance(keyed, Rejection):
        return keyed
    obj, key_bytes = keyed
    try:
        return _parse(obj, key_bytes, now_ms)
    except _InvalidError as invalid:
        return Rejection(invalid.reason, invalid.detail)


def decode_impression(value: bytes | None, key: bytes | None, *, now_ms: int | None = None) -> Impression | Rejection:
    """Decode one message of the impression topic, or say why it is not an impression; never raises.

    The key is required and must equal ``user_id``; ``now_ms`` enables the check against a ``ts`` more than
    ``MAX_FUTURE_SKEW_MS`` ahead.
    """
    try:
        return _decode(value, key, now_ms)
    except Exception as exc:
        # A bug here must cost only this message, never the feedback consumer.
        return Rejection(Reason.UNDECODABLE, f"the decoder failed ({type(exc).__name__})")


class InvalidImpressionError(ContractRejectionError):
    """An impression the contract rejects; raised by the SDK before anything is sent. Nothing was sent."""
