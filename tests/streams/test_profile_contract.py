"""The profile-updated contract's bytes: valid against the published schema, compact, and parsed back."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema  # type: ignore[import-untyped]
import numpy as np
import pytest

from state.aggregates import profile_aggregates
from state.record import UserState
from state.spec import StateSpec
from streams.contract.profile import ProfileDecodeError, ProfileUpdated, zero_aggregates
from streams.worker.encoder_runtime import embedding_rows

SCHEMA = json.loads(
    (Path(__file__).parents[2] / "streams" / "contract" / "schemas" / "profile-updated-v1.schema.json").read_text()
)


def _profile(user_id: str = "user-1", embedding: list[float] | None = None) -> ProfileUpdated:
    rows = embedding_rows(np.random.default_rng(3).normal(size=(1, 16)).astype(np.float32))
    return ProfileUpdated(
        user_id=user_id,
        version=4,
        model_version="m-1",
        embedding=rows[0] if embedding is None else embedding,
        updated_at_ms=1_700_000_000_123,
        last_event_ts_ms=1_700_000_000_000,
        event_count=9,
        aggregates=profile_aggregates(UserState.new(), StateSpec()),
    )


@pytest.mark.parametrize("user_id", ["user-1", "usér-ü-東京"])
def test_published_bytes_match_the_schema_and_the_standard_librarys_reading(user_id: str) -> None:
    profile = _profile(user_id)
    data = profile.to_bytes()
    obj = json.loads(data.decode("utf-8"))
    jsonschema.validate(obj, SCHEMA)
    assert obj == profile.to_dict()
    assert b" " not in data.replace(b"\\u", b"")  # compact: no separators with spaces
    assert ProfileUpdated.from_bytes(data) == profile


def test_small_and_large_embedding_values_round_trip_exactly() -> None:
    values = [0.0, 1e-07, -1e-07, 0.1234567, -0.9999999, 1.0, 12345.5]
    profile = _profile(embedding=values)
    assert json.loads(profile.to_bytes())["embedding"] == values
    assert ProfileUpdated.from_bytes(profile.to_bytes()).embedding == values


@pytest.mark.parametrize(
    "data",
    [b"", b"not json", b"[1, 2]", b'{"schema": 2}', b'{"schema": 1, "user_id": "u"}', b"\xff\xfe"],
)
def test_anything_else_is_a_profile_decode_error(data: bytes) -> None:
    with pytest.raises(ProfileDecodeError):
        ProfileUpdated.from_bytes(data)


def test_non_finite_embeddings_are_rejected() -> None:
    data = json.dumps({**_profile().to_dict(), "embedding": [float("nan")]}).encode()
    with pytest.raises(ProfileDecodeError):
        ProfileUpdated.from_bytes(data)


WRONG_FIELDS = {
    "user-id-null": {"user_id": None},
    "user-id-empty": {"user_id": ""},
    "model-version-null": {"model_version": None},
    "version-string": {"version": "7"},
    "version-float": {"version": 6.9},
    "version-bool": {"version": True},
    "version-zero": {"version": 0},
    "version-negative": {"version": -5},
    "schema-float": {"schema": 1.0},
    "embedding-string": {"embedding": "123"},
    "embedding-object": {"embedding": {"1": 2}},
    "embedding-empty": {"embedding": []},
    "embedding-bools": {"embedding": [True, False]},
    "aggregates-array": {"aggregates": [["a", 1]]},
    "event-count-zero": {"event_count": 0},
    "updated-at-string": {"updated_at": "1700000000123"},
}


@pytest.mark.parametrize("change", WRONG_FIELDS.values(), ids=WRONG_FIELDS)
def test_a_field_of_the_wrong_type_or_range_is_refused_as_the_schema_refuses_it(change: dict[str, object]) -> None:
    obj = {**_profile().to_dict(), **change}
    if change != {"schema": 1.0}:  # JSON Schema's const 1 equals 1.0; the contract writes integers as integers
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(obj, SCHEMA)
    with pytest.raises(ProfileDecodeError):
        ProfileUpdated.from_bytes(json.dumps(obj).encode())


def test_an_embedding_beyond_float32_is_refused() -> None:
    # Consumers hold embeddings as float32, where 1e300 becomes infinite and every dot product with it too.
    data = json.dumps({**_profile().to_dict(), "embedding": [1e300, 0.001]}).encode()
    with pytest.raises(ProfileDecodeError, match="float32"):
        ProfileUpdated.from_bytes(data)


def test_a_profile_whose_user_id_differs_from_its_key_is_refused() -> None:
    data = _profile("bob").to_bytes()
    assert ProfileUpdated.from_bytes(data, b"bob").user_id == "bob"
    assert ProfileUpdated.from_bytes(_profile("usér-東京").to_bytes(), "usér-東京".encode()).user_id == "usér-東京"
    with pytest.raises(ProfileDecodeError, match="message key"):
        ProfileUpdated.from_bytes(data, b"alice")


def test_the_error_of_an_unsupported_schema_quotes_no_value_of_the_message() -> None:
    # Consumers log the error (streams.client.subscriber): a producer's mistake must not put its content there.
    data = json.dumps({"schema": {"user_id": "alice@example.com", "query": "a private search"}}).encode()
    with pytest.raises(ProfileDecodeError) as refused:
        ProfileUpdated.from_bytes(data)
    assert "alice" not in str(refused.value) and "private" not in str(refused.value)
    assert str(refused.value) == "unsupported profile schema of type dict"
    with pytest.raises(ProfileDecodeError, match=r"unsupported profile schema 2$"):
        ProfileUpdated.from_bytes(b'{"schema": 2}')


def _nested(depth: int) -> object:
    value: object = []
    for _ in range(depth):
        value = [value]
    return value


WRONG_AGGREGATES: dict[str, dict[str, object] | None] = {
    "empty": None,
    "count-missing": {"browse_count_1h": ...},
    "count-negative": {"search_count_24h": -1},
    "count-float": {"purchase_count_7d": 1.5},
    "count-bool": {"purchase_count_30d": True},
    "count-string": {"browse_count_7d": "3"},
    "spend-negative": {"purchase_spend_30d": -0.5},
    "spend-string": {"purchase_spend_30d": "12.50"},
    "top-not-a-list": {"top_categories": {"hash": "0123456789abcdef", "weight": 1.0}},
    "top-hash-short": {"top_categories": [{"hash": "abc", "weight": 1.0}]},
    "top-hash-upper": {"top_search_terms": [{"hash": "0123456789ABCDEF", "weight": 1.0}]},
    "top-weight-negative": {"top_search_terms": [{"hash": "0123456789abcdef", "weight": -1}]},
    "top-weight-missing": {"top_categories": [{"hash": "0123456789abcdef"}]},
}


@pytest.mark.parametrize("change", WRONG_AGGREGATES.values(), ids=WRONG_AGGREGATES)
def test_aggregates_the_schema_refuses_are_refused(change: dict[str, object] | None) -> None:
    # Only "an object" was checked: a consumer reading aggregates["browse_count_1h"] met a KeyError or a string.
    obj = _profile().to_dict()
    aggregates = {} if change is None else {**obj["aggregates"], **change}
    aggregates = {name: value for name, value in aggregates.items() if value is not ...}
    obj["aggregates"] = aggregates
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(obj, SCHEMA)
    with pytest.raises(ProfileDecodeError, match="aggregate"):
        ProfileUpdated.from_bytes(json.dumps(obj).encode())


def test_aggregates_may_carry_more_fields_but_not_nested_beyond_the_contracts_depth() -> None:
    obj = _profile().to_dict()
    obj["aggregates"] = {**obj["aggregates"], "extra": {"a": [1, 2]}}
    assert ProfileUpdated.from_bytes(json.dumps(obj).encode()).aggregates["extra"] == {"a": [1, 2]}
    obj["aggregates"]["extra"] = _nested(900)  # printed by `profiles tail`, it overflowed json's recursion
    with pytest.raises(ProfileDecodeError, match="deeper"):
        ProfileUpdated.from_bytes(json.dumps(obj).encode())


def test_the_contracts_zero_aggregates_are_what_the_worker_writes_for_an_empty_state() -> None:
    # The decoder's list of required aggregates and the state's aggregators must name the same keys.
    assert zero_aggregates() == profile_aggregates(UserState.new(), StateSpec())
    profile = ProfileUpdated("u", 1, "m", [1.0], 1, 1, 1)  # the default aggregates are valid ones
    assert ProfileUpdated.from_bytes(profile.to_bytes()) == profile
