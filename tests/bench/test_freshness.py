"""Per-event freshness from what the paced load sent and what the consumer read."""

from __future__ import annotations

import math

import numpy as np

from bench.freshness import event_latencies_ms, settled

T = 1_800_000_000_000


def test_each_event_takes_the_first_profile_that_includes_it() -> None:
    # User 0 sends at T, T+10, T+20; profiles covering T (read at T+50) and T+20 (read at T+90).
    latencies = event_latencies_ms(
        event_user=[0, 0, 0],
        event_ts_ms=[T, T + 10, T + 20],
        profile_user=[0, 0],
        profile_last_event_ts_ms=[T, T + 20],
        profile_read_ms=[T + 50, T + 90],
    )
    assert latencies.tolist() == [50.0, 80.0, 70.0]


def test_users_do_not_mix_and_uncovered_events_are_nan() -> None:
    latencies = event_latencies_ms(
        event_user=[1, 2, 2],
        event_ts_ms=[T, T, T + 5],
        profile_user=[2, 1],
        profile_last_event_ts_ms=[T, T + 100],
        profile_read_ms=[T + 7, T + 300],
    )
    assert latencies[0] == 300.0
    assert latencies[1] == 7.0
    assert math.isnan(latencies[2])


def test_the_earliest_read_wins_among_equal_profiles() -> None:
    latencies = event_latencies_ms([3], [T], [3, 3], [T, T], [T + 20, T + 40])
    assert latencies.tolist() == [20.0]


def test_no_profiles_means_every_event_is_uncovered() -> None:
    assert np.isnan(event_latencies_ms([0, 1], [T, T], [], [], [])).all()


def test_settled_events_are_those_sent_after_the_settling_time_from_the_first() -> None:
    # Listed out of order: the first event is the earliest, wherever it stands.
    sent = [T + 2_999, T, T + 3_000, T + 10_000]
    assert settled(sent, settle_ms=3_000).tolist() == [False, False, True, True]


def test_no_event_is_settled_in_a_phase_shorter_than_the_settling_time() -> None:
    assert not settled([T, T + 1_000], settle_ms=3_000).any()
    assert settled([], settle_ms=3_000).shape == (0,)
