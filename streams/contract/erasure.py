"""Erasure request contract, version 1: who is to be forgotten, and the one decoder of such requests.

An erasure request is a JSON object on ``privacy.erasure``, keyed by the user id::

    {"schema": 1, "request_id": "<UUID>", "user_id": "<user>", "requested_at": <ms>, "reason": "user_request"}

Erasure cannot be undone, so the worker executes only a request that passes :func:`decode_erasure`; anything
else is dead-lettered with a reason code from :class:`streams.contract.decoder.Reason`. A message with a key and
no value (the form the topic took before this contract) is refused too: a null value is what a mistaken producer
or a tombstone sent to the wrong topic looks like, and no release of the SDK ever sent one.

``request_id`` must be a UUID, so the worker can log it (for an audit trail) without logging personal data;
``reason`` is a closed set, so it is safe as a log field and a metric label.
"""

from __future__ import annotations

import json
import uuid
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
    keyed_json_object,
)
from streams.contract.events import MAX_FUTURE_SKEW_MS, MAX_TS_MS, MIN_TS_MS

ERASURE_SCHEMA_VERSION: Final = 1
MAX_ERASURE_BYTES: Final = 4096
"""Largest erasure request value: the five fields take well under 1 KiB; producers may add a few of their own."""

ErasureReason = Literal["user_request", "account_closed", "legal_order", "retention_policy", "other"]
ERASURE_REASONS: Final[tuple[ErasureReason, ...]] = (
    "user_request",
    "account_closed",
    "legal_order",
    "retention_policy",
    "other",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class ErasureRequest:
    """A valid request to erase every trace of ``user_id``."""

    request_id: str
    user_id: str
    requested_at_ms: int
    reason: ErasureReason


def new_request_id() -> str:
    """A fresh request id (UUID4)."""
    return str(uuid.uuid4())


def erasure_to_dict(request: ErasureRequest) -> dict[str, object]:
    """The JSON object of a request, as it goes on the wire."""
    return {
        "schema": ERASURE_SCHEMA_VERSION,
        "request_id": request.request_id,
        "user_id": request.user_id,
        "requested_at": request.requested_at_ms,
        "reason": request.reason,
    }


def encode_erasure(request: ErasureRequest) -> bytes:
    """The UTF-8 JSON bytes of a request."""
    return json.dumps(erasure_to_dict(request), separators=(",", ":"), ensure_ascii=False).encode()


def _request_id(obj: dict[str, Any]) -> str:
    text = _required_string(obj, "request_id")
    try:
        parsed = uuid.UUID(text)
    except ValueError:
        raise _InvalidError(Reason.INVALID_VALUE, "request_id must be a UUID") from None
    if str(parsed) != text.lower():
        # Only the canonical 8-4-4-4-12 form: braces, URNs and missing hyphens are other strings for other tools.
        raise _InvalidError(Reason.INVALID_VALUE, "request_id must be a UUID in its 8-4-4-4-12 form")
    return text


def _parse(obj: dict[str, Any], key: bytes, now_ms: int | None) -> ErasureRequest:
    schema = obj.get("schema")
    if isinstance(schema, bool) or schema != ERASURE_SCHEMA_VERSION:
        raise _InvalidError(Reason.UNSUPPORTED_SCHEMA, f"schema must be {ERASURE_SCHEMA_VERSION}")
    request_id = _request_id(obj)
    user_id = _required_string(obj, "user_id")
    if key != user_id.encode():
        raise _InvalidError(Reason.KEY_MISMATCH, "message key differs from user_id")
    requested_at_ms = _integer(obj, "requested_at")
    if not MIN_TS_MS <= requested_at_ms < MAX_TS_MS:
        raise _InvalidError(
            Reason.TS_OUT_OF_RANGE, "requested_at must be milliseconds since the epoch, years 2000 to 2099"
        )
    if now_ms is not None and requested_at_ms > now_ms + MAX_FUTURE_SKEW_MS:
        raise _InvalidError(
            Reason.TS_OUT_OF_RANGE, f"requested_at is more than {MAX_FUTURE_SKEW_MS // 60_000} minutes in the future"
        )
    reason = obj.get("reason")
    if reason is None:
        raise _InvalidError(Reason.MISSING_FIELD, "field 'reason' is required")
    if not isinstance(reason, str):
        raise _InvalidError(Reason.WRONG_TYPE, "field 'reason' must be a string")
    if reason not in ERASURE_REASONS:
        raise _InvalidError(Reason.INVALID_VALUE, f"reason must be one of {', '.join(ERASURE_REASONS)}")
    return ErasureRequest(
        request_id=request_id,
        user_id=user_id,
        requested_at_ms=requested_at_ms,
        reason=reason,  # checked against ERASURE_REASONS above
    )


def _decode(value: bytes | None, key: bytes | None, now_ms: int | None) -> ErasureRequest | Rejection:
    keyed = keyed_json_object(
        value,
        key,
        what="an erasure request",
        max_bytes=MAX_ERASURE_BYTES,
        no_value="an erasure request needs a value; a key alone is not a request",
    )
    if isinstance(keyed, Rejection):
        return keyed
    obj, key_bytes = keyed
    try:
        return _parse(obj, key_bytes, now_ms)
    except _InvalidError as invalid:
        return Rejection(invalid.reason, invalid.detail)


def decode_erasure(value: bytes | None, key: bytes | None, *, now_ms: int | None = None) -> ErasureRequest | Rejection:
    """Decode one message of the erasure topic into a request, or say why it is not one; never raises.

    The key is required and must equal ``user_id``; ``now_ms`` enables the check against a ``requested_at`` more
    than ``MAX_FUTURE_SKEW_MS`` ahead. Details never quote field values.
    """
    try:
        return _decode(value, key, now_ms)
    except Exception as exc:
        # A bug here must not stop the erasure agent; the message is dead-lettered and can be replayed.
        return Rejection(Reason.UNDECODABLE, f"the decoder failed ({type(exc).__name__})")


class InvalidErasureError(ContractRejectionError):
    """An erasure request the contract rejects; raised by the SDK before anything is sent. Nothing was sent."""
