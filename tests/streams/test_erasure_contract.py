"""The erasure request contract: what is executed and what is dead-lettered, and why."""

from __future__ import annotations

import json

import pytest

from streams.contract.decoder import Reason, Rejection
from streams.contract.erasure import (
    ERASURE_REASONS,
    MAX_ERASURE_BYTES,
    ErasureRequest,
    decode_erasure,
    encode_erasure,
    new_request_id,
)
from streams.contract.events import MAX_FUTURE_SKEW_MS
from streams.worker.erasure import STAGE, check_erasure
from streams.worker.processor import DeadLetter, InboundMessage
from tests.streams.hostile_inputs import hostile_inputs

NOW_MS = 1_767_225_600_000
REQUEST_ID = "6f1c1e8a-3b3c-4d2e-9a57-2f4d5b7f9c10"


def _value(**changes: object) -> bytes:
    obj: dict[str, object] = {
        "schema": 1,
        "request_id": REQUEST_ID,
        "user_id": "u-1",
        "requested_at": NOW_MS,
        "reason": "user_request",
    }
    obj.update(changes)
    return json.dumps({k: v for k, v in obj.items() if v is not None}).encode()


def _reason(value: bytes | None, key: bytes | None = b"u-1") -> Reason:
    decoded = decode_erasure(value, key, now_ms=NOW_MS)
    assert isinstance(decoded, Rejection), decoded
    return decoded.reason


@pytest.mark.parametrize("reason", ERASURE_REASONS)
def test_an_encoded_request_decodes_to_itself(reason: str) -> None:
    request = ErasureRequest(request_id=new_request_id(), user_id="ü-1", requested_at_ms=NOW_MS, reason=reason)  # type: ignore[arg-type]
    assert decode_erasure(encode_erasure(request), "ü-1".encode(), now_ms=NOW_MS) == request


def test_a_key_alone_is_not_a_request() -> None:
    # The form the topic took before the contract: refused, since a null value is what a mistake looks like.
    assert _reason(None) is Reason.MISSING_FIELD
    assert _reason(b"") is Reason.NOT_JSON


def test_the_value_the_sdk_sent_before_the_contract_is_refused() -> None:
    legacy = json.dumps({"schema": 1, "user_id": "u-1", "requested_at": NOW_MS}).encode()
    assert _reason(legacy) is Reason.MISSING_FIELD


@pytest.mark.parametrize(
    ("value", "key", "reason"),
    [
        (_value(), None, Reason.MISSING_KEY),
        (_value(), b"", Reason.MISSING_KEY),
        (_value(), b"someone-else", Reason.KEY_MISMATCH),
        (_value(schema=2), b"u-1", Reason.UNSUPPORTED_SCHEMA),
        (_value(schema=True), b"u-1", Reason.UNSUPPORTED_SCHEMA),
        (_value(request_id="not-a-uuid"), b"u-1", Reason.INVALID_VALUE),
        (_value(request_id=REQUEST_ID.replace("-", "")), b"u-1", Reason.INVALID_VALUE),
        (_value(request_id="{" + REQUEST_ID + "}"), b"u-1", Reason.INVALID_VALUE),
        (_value(request_id=None), b"u-1", Reason.MISSING_FIELD),
        (_value(user_id=None), b"u-1", Reason.MISSING_FIELD),
        (_value(user_id=7), b"u-1", Reason.WRONG_TYPE),
        (_value(requested_at=None), b"u-1", Reason.MISSING_FIELD),
        (_value(requested_at=float(NOW_MS)), b"u-1", Reason.WRONG_TYPE),
        (_value(requested_at=NOW_MS // 1000), b"u-1", Reason.TS_OUT_OF_RANGE),
        (_value(requested_at=NOW_MS + MAX_FUTURE_SKEW_MS + 1), b"u-1", Reason.TS_OUT_OF_RANGE),
        (_value(reason=None), b"u-1", Reason.MISSING_FIELD),
        (_value(reason=["user_request"]), b"u-1", Reason.WRONG_TYPE),
        (_value(reason="because"), b"u-1", Reason.INVALID_VALUE),
        (b"\xff\xfe", b"u-1", Reason.NOT_UTF8),
        (b"[1, 2]", b"u-1", Reason.NOT_OBJECT),
        (b'{"schema": 1, "schema": 1}', b"u-1", Reason.NOT_JSON),
        (b"[" * 40 + b"]" * 40, b"u-1", Reason.NOT_JSON),
        (_value(padding="x" * MAX_ERASURE_BYTES), b"u-1", Reason.TOO_LARGE),
    ],
)
def test_a_malformed_request_is_rejected_with_its_reason(value: bytes, key: bytes | None, reason: Reason) -> None:
    assert _reason(value, key) is reason


def test_a_request_at_the_edge_of_the_clock_is_accepted_and_unknown_fields_are_ignored() -> None:
    decoded = decode_erasure(_value(requested_at=NOW_MS + MAX_FUTURE_SKEW_MS, ticket="T-1"), b"u-1", now_ms=NOW_MS)
    assert isinstance(decoded, ErasureRequest)
    assert decoded.requested_at_ms == NOW_MS + MAX_FUTURE_SKEW_MS


def test_details_never_quote_the_user() -> None:
    rejected = decode_erasure(_value(user_id="secret-person", reason="nope"), b"secret-person", now_ms=NOW_MS)
    assert isinstance(rejected, Rejection)
    assert "secret-person" not in rejected.detail


def test_the_decoder_never_raises_on_hostile_bytes() -> None:
    for row in hostile_inputs(NOW_MS):
        decoded = decode_erasure(row.value, row.key, now_ms=NOW_MS)
        # No hostile event is an erasure request: none of them has a request id.
        assert isinstance(decoded, Rejection), row


def _message(value: bytes, key: bytes, partition: int) -> InboundMessage:
    return InboundMessage(
        topic="privacy.erasure", partition=partition, offset=3, key=key, value=value, topic_type="erasure"
    )


def test_the_worker_refuses_a_request_on_another_partition_than_its_user() -> None:
    def owner(key: bytes) -> int:
        return 2

    accepted = check_erasure(_message(_value(), b"u-1", 2), owner, NOW_MS)
    assert isinstance(accepted, ErasureRequest)
    refused = check_erasure(_message(_value(), b"u-1", 1), owner, NOW_MS)
    assert isinstance(refused, DeadLetter)
    assert (refused.stage, refused.reason) == (STAGE, Reason.WRONG_PARTITION)
    malformed = check_erasure(_message(b"null", b"u-1", 2), owner, NOW_MS)
    assert isinstance(malformed, DeadLetter)
    assert malformed.reason is Reason.NOT_OBJECT
