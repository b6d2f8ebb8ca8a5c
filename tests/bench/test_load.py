"""The load generator: reproducible, valid contract-v1 events with the asked-for shape."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bench.load import EventEncoder, LoadSpec, build_schedule, user_id, user_index, zipf_ranks
from streams.contract.decoder import Rejection, decode_event
from streams.contract.events import EVENT_TYPES


def _bytes(spec: LoadSpec) -> list[tuple[str, bytes, bytes]]:
    return list(EventEncoder(build_schedule(spec)).messages())


def test_same_spec_gives_the_same_messages() -> None:
    spec = LoadSpec(users=50, events=500)
    assert _bytes(spec) == _bytes(LoadSpec(users=50, events=500))


def test_another_seed_gives_another_stream() -> None:
    assert _bytes(LoadSpec(users=50, events=500, seed=1)) != _bytes(LoadSpec(users=50, events=500, seed=2))


@pytest.mark.parametrize("order", ["zipf", "rounds", "blocks"])
def test_every_message_is_a_valid_event_keyed_by_its_user(order: str) -> None:
    spec = LoadSpec(users=20, events=400, user_order=order)  # type: ignore[arg-type]
    schedule = build_schedule(spec)
    for i, (event_type, key, value) in enumerate(EventEncoder(schedule).messages()):
        decoded = decode_event(value, key, topic_type=event_type, require_key=True)
        assert not isinstance(decoded, Rejection), decoded
        assert decoded.user_id == user_id(int(schedule.user[i]))
        assert decoded.ts_ms == int(schedule.ts_ms[i])
        assert decoded.type == EVENT_TYPES[int(schedule.type_code[i])]


def test_event_ids_are_unique() -> None:
    ids = {json.loads(value)["event_id"] for _, _, value in _bytes(LoadSpec(users=10, events=2000))}
    assert len(ids) == 2000


def test_type_mix_is_respected() -> None:
    schedule = build_schedule(LoadSpec(users=100, events=20_000, type_mix=(0.5, 0.3, 0.2)))
    shares = np.bincount(schedule.type_code, minlength=3) / 20_000
    assert np.allclose(shares, [0.5, 0.3, 0.2], atol=0.02)


def test_zipf_users_have_a_heavy_head_and_cover_most_users() -> None:
    counts = np.sort(build_schedule(LoadSpec(users=1000, events=50_000, user_skew=1.0)).events_per_user())[::-1]
    assert counts[:10].sum() > 10 * counts[-100:].sum()
    assert np.count_nonzero(counts) > 900


def test_rounds_give_every_user_one_event_per_round() -> None:
    schedule = build_schedule(LoadSpec(users=30, events=30 * 7, user_order="rounds"))
    for r in range(7):
        assert sorted(schedule.user[r * 30 : (r + 1) * 30].tolist()) == list(range(30))
    assert np.all(np.diff(schedule.ts_ms) >= 0)


def test_blocks_keep_each_users_events_together_in_time_order() -> None:
    schedule = build_schedule(LoadSpec(users=5, events=5 * 20, user_order="blocks", mean_gap_ms=3_600_000))
    assert schedule.user.tolist() == [u for u in range(5) for _ in range(20)]
    per_user = schedule.ts_ms.reshape(5, 20)
    assert np.all(np.diff(per_user, axis=1) >= 0)
    # About an hour apart on average: twenty events span most of a day.
    assert 10 * 3_600_000 < int(np.median(per_user[:, -1] - per_user[:, 0])) < 30 * 3_600_000


def test_paced_time_replaces_the_schedule_time() -> None:
    encoder = EventEncoder(build_schedule(LoadSpec(users=3, events=10)))
    _, _, value = encoder.message(4, ts_ms=1_800_000_000_123)
    assert json.loads(value)["ts"] == 1_800_000_000_123


def test_user_ids_round_trip() -> None:
    assert user_index(user_id(123_456).encode()) == 123_456
    with pytest.raises(ValueError, match="generated"):
        user_index(b"alice")


def test_zipf_ranks_stay_in_range_and_skew_zero_is_uniform() -> None:
    rng = np.random.default_rng(0)
    ranks = zipf_ranks(rng, 10, 100_000, 0.0)
    assert ranks.min() == 0 and ranks.max() == 9
    assert np.allclose(np.bincount(ranks) / 100_000, 0.1, atol=0.01)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"users": 0, "events": 10},
        {"users": 3, "events": 10, "user_order": "rounds"},
        {"users": 3, "events": 9, "type_mix": (1.0, 0.0)},
        {"users": 3, "events": 9, "user_skew": -1.0},
    ],
)
def test_bad_specs_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        LoadSpec(**kwargs)  # type: ignore[arg-type]
