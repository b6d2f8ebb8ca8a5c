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
from streams.contract.profile import ProfileDecodeError, ProfileUpdated
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
