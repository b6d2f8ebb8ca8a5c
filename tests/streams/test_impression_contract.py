"""The impression contract: the SDK's bytes round-trip through the one decoder, match the published JSON Schema,
and each kind of malformed impression is rejected with its reason (the schema rejecting it too)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema  # type: ignore[import-untyped]
import pytest

from streams.contract.decoder import Reason, Rejection
from streams.contract.feedback import (
    MAX_IMPRESSION_BYTES,
    MAX_IMPRESSION_ITEMS,
    Impression,
    decode_impression,
    encode_impression,
    impression_to_dict,
)

SCHEMA = json.loads(
    (Path(__file__).parents[2] / "streams" / "contract" / "schemas" / "impression-v1.schema.json").read_text()
)
TS = 1_767_225_600_000
SHOWN = Impression(
    request_id="2b1e0c9a-64c4-4f63-9a8e-0d6f4b5e7c21",
    user_id="u1",
    ts_ms=TS,
    model_version="3e6d72bafdc3420f",
    source="profile",
    item_ids=("item-12", "item-3", "item-7"),
)
POPULAR = Impression(request_id="r-2", user_id="u2", ts_ms=TS, model_version=None, source="popular", item_ids=())


@pytest.mark.parametrize("impression", [SHOWN, POPULAR], ids=["profile", "popular-empty"])
def test_impressions_round_trip_and_match_the_schema(impression: Impression) -> None:
    payload = encode_impression(impression)
    assert decode_impression(payload, impression.user_id.encode(), now_ms=TS) == impression
    jsonschema.validate(json.loads(payload), SCHEMA)


def _changed(**changes: object) -> dict[str, object]:
    obj = impression_to_dict(SHOWN)
    obj.update(changes)
    return {k: v for k, v in obj.items() if v is not None}


BAD = [
    ("no-request-id", _changed(request_id=None), Reason.MISSING_FIELD),
    ("schema-2", _changed(schema=2), Reason.UNSUPPORTED_SCHEMA),
    ("wrong-type", _changed(type="browse"), Reason.UNKNOWN_EVENT_TYPE),
    ("items-not-array", _changed(items="item-1"), Reason.WRONG_TYPE),
    ("item-not-string", _changed(items=["item-1", 2]), Reason.WRONG_TYPE),
    ("item-null", _changed(items=["item-1", None]), Reason.WRONG_TYPE),
    ("item-empty", _changed(items=["item-1", " "]), Reason.INVALID_VALUE),
    ("too-many-items", _changed(items=[f"i{i}" for i in range(MAX_IMPRESSION_ITEMS + 1)]), Reason.INVALID_VALUE),
    ("bad-source", _changed(source="random"), Reason.INVALID_VALUE),
    ("profile-without-version", _changed(model_version=None), Reason.MISSING_FIELD),
    ("ts-seconds", _changed(ts=TS // 1000), Reason.TS_OUT_OF_RANGE),
    ("ts-float", _changed(ts=1.5), Reason.WRONG_TYPE),
]


@pytest.mark.parametrize(("name", "document", "reason"), BAD, ids=[b[0] for b in BAD])
def test_malformed_impressions_are_rejected_with_their_reason(
    name: str, document: dict[str, object], reason: Reason
) -> None:
    decoded = decode_impression(json.dumps(document).encode(), b"u1")
    assert isinstance(decoded, Rejection) and decoded.reason == reason, name
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, SCHEMA)


def test_key_value_and_size_are_checked_before_the_fields() -> None:
    payload = encode_impression(SHOWN)
    assert decode_impression(payload, None) == Rejection(Reason.MISSING_KEY, "an impression must be keyed by user_id")
    mismatch = decode_impression(payload, b"someone-else")
    assert isinstance(mismatch, Rejection) and mismatch.reason == Reason.KEY_MISMATCH
    assert isinstance(decode_impression(None, b"u1"), Rejection)
    huge = decode_impression(b" " * (MAX_IMPRESSION_BYTES + 1), b"u1")
    assert isinstance(huge, Rejection) and huge.reason == Reason.TOO_LARGE
    future = decode_impression(payload, b"u1", now_ms=TS - 3_600_000)
    assert isinstance(future, Rejection) and future.reason == Reason.TS_OUT_OF_RANGE


def test_the_largest_impression_the_contract_allows_fits_its_byte_limit() -> None:
    widest = Impression(
        request_id="r" * 256,
        user_id="u" * 256,
        ts_ms=TS,
        model_version="m" * 256,
        source="profile",
        item_ids=tuple("\U0001f600" * 255 + str(i % 10) for i in range(MAX_IMPRESSION_ITEMS)),
    )
    payload = encode_impression(widest)
    assert len(payload) <= MAX_IMPRESSION_BYTES
    assert decode_impression(payload, widest.user_id.encode()) == widest
