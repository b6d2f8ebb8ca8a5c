"""EventTimeAligner: event-time order across co-partitioned topics, bounded idle waits, offset order kept."""

from __future__ import annotations

import logging

import pytest

from streams.worker.alignment import BrokerAbsence, EventTimeAligner, Held, Progress, partition_progress

TOPICS = ("browse", "search", "purchase")


def _held(topic: str, partition: int, offset: int, ts_ms: int) -> Held[str]:
    return Held(topic, partition, offset, ts_ms, f"{topic}:{partition}:{offset}")


def _caught_up_when(known_ends: dict[tuple[str, int], int]):  # type: ignore[no-untyped-def]
    """Progress against known end offsets; a partition missing from ``known_ends`` has none yet (unknown)."""

    def progress(topic: str, partition: int, next_offset: int | None) -> Progress:
        end = known_ends.get((topic, partition))
        if end is None:
            return Progress.UNKNOWN
        return Progress.CAUGHT_UP if (next_offset or 0) >= end else Progress.BEHIND

    return progress


def test_a_topic_that_raced_ahead_waits_for_the_older_events_of_the_others() -> None:
    aligner: EventTimeAligner[str] = EventTimeAligner(TOPICS, max_idle_ms=1000, max_queued_per_partition=100)
    aligner.assign([0])
    ends = {("browse", 0): 3, ("search", 0): 2, ("purchase", 0): 0}
    # browse arrives first and runs hours ahead; search has not been received yet.
    for offset, ts in enumerate([10_000, 20_000, 30_000]):
        aligner.add(_held("browse", 0, offset, ts))
    assert aligner.release(0, _caught_up_when(ends)) == []
    assert aligner.held == 3
    for offset, ts in enumerate([5_000, 25_000]):
        aligner.add(_held("search", 0, offset, ts))
    released = aligner.release(10, _caught_up_when(ends))
    assert [h.ts_ms for h in released] == [5_000, 10_000, 20_000, 25_000, 30_000]
    assert aligner.held == 0


def test_an_empty_partition_with_unread_events_holds_the_others_for_the_long_lag_bound() -> None:
    aligner: EventTimeAligner[str] = EventTimeAligner(
        TOPICS, max_idle_ms=500, max_queued_per_partition=100, max_lag_wait_ms=60_000
    )
    aligner.assign([1])
    ends = {("browse", 1): 1, ("search", 1): 0, ("purchase", 1): 7}  # purchase has unread events still to come
    aligner.add(_held("browse", 1, 0, 1_000))
    assert aligner.release(0, _caught_up_when(ends)) == []
    assert aligner.release(59_999, _caught_up_when(ends)) == [], "a slow fetch is waited for, not overtaken"
    assert [h.offset for h in aligner.release(60_000, _caught_up_when(ends))] == [0]


def test_a_partition_nothing_is_known_of_holds_the_others_only_for_the_idle_bound() -> None:
    aligner: EventTimeAligner[str] = EventTimeAligner(TOPICS, max_idle_ms=500, max_queued_per_partition=100)
    aligner.assign([1])
    ends = {("browse", 1): 1, ("search", 1): 0}  # no fetch has answered for purchase yet
    aligner.add(_held("browse", 1, 0, 1_000))
    assert aligner.release(0, _caught_up_when(ends)) == []
    assert aligner.release(499, _caught_up_when(ends)) == []
    assert [h.offset for h in aligner.release(500, _caught_up_when(ends))] == [0]


def test_caught_up_partitions_hold_nobody_back() -> None:
    aligner: EventTimeAligner[str] = EventTimeAligner(TOPICS, max_idle_ms=10_000, max_queued_per_partition=100)
    aligner.assign([0])
    aligner.add(_held("purchase", 0, 41, 7))
    ends = {("browse", 0): 0, ("search", 0): 0, ("purchase", 0): 42}
    assert [h.item for h in aligner.release(0, _caught_up_when(ends))] == ["purchase:0:41"]


def test_a_caught_up_partition_the_others_ran_past_the_lateness_holds_them_for_the_idle_bound() -> None:
    # A producer's burst lands one partition at a time: browse 0 looks caught up at its event time 1,000 while
    # search 0 already holds events far past it; browse's next event, still on its way, would come too late.
    hour = 3_600_000
    aligner: EventTimeAligner[str] = EventTimeAligner(
        TOPICS, max_idle_ms=2_000, max_queued_per_partition=100, max_ahead_ms=hour
    )
    aligner.assign([0])
    aligner.add(_held("browse", 0, 0, 1_000))
    aligner.add(_held("search", 0, 0, 2_000))
    aligner.add(_held("search", 0, 1, 1_000 + hour + 1))
    ends = {("browse", 0): 1, ("search", 0): 2, ("purchase", 0): 0}
    # Within the lateness nothing waits: browse's next event could not be refused.
    assert [h.ts_ms for h in aligner.release(0, _caught_up_when(ends))] == [1_000, 2_000]
    assert aligner.release(1_999, _caught_up_when(ends)) == [], "more than the lateness ahead: wait"
    aligner.add(_held("browse", 0, 1, 3_000))  # the rest of the burst lands
    ends[("browse", 0)] = 2
    assert [h.ts_ms for h in aligner.release(2_000, _caught_up_when(ends))] == [3_000, 1_000 + hour + 1]


def test_an_idle_topic_the_others_ran_past_the_lateness_holds_them_only_once_for_the_idle_bound() -> None:
    hour = 3_600_000
    aligner: EventTimeAligner[str] = EventTimeAligner(
        TOPICS, max_idle_ms=2_000, max_queued_per_partition=100, max_ahead_ms=hour
    )
    aligner.assign([0])
    aligner.add(_held("purchase", 0, 0, 1_000))
    ends = {("browse", 0): 0, ("search", 0): 0, ("purchase", 0): 1}
    assert [h.item for h in aligner.release(0, _caught_up_when(ends))] == ["purchase:0:0"]
    ends[("browse", 0)] = 3
    for offset in range(3):
        aligner.add(_held("browse", 0, offset, 2 * hour + offset))
    assert aligner.release(0, _caught_up_when(ends)) == []
    assert [h.offset for h in aligner.release(2_000, _caught_up_when(ends))] == [0, 1, 2]
    aligner.add(_held("browse", 0, 3, 3 * hour))
    ends[("browse", 0)] = 4
    # Purchases are still idle: the wait is not repeated for every unit until one comes.
    assert [h.offset for h in aligner.release(2_001, _caught_up_when(ends))] == [3]


def test_offsets_of_one_partition_leave_in_order_even_when_their_times_do_not() -> None:
    aligner: EventTimeAligner[str] = EventTimeAligner(TOPICS, max_idle_ms=0, max_queued_per_partition=100)
    aligner.assign([0])
    for offset, ts in enumerate([300, 100, 200]):
        aligner.add(_held("browse", 0, offset, ts))
    aligner.add(_held("search", 0, 0, 150))
    released = aligner.release(0, _caught_up_when({}))
    browse = [h.offset for h in released if h.topic == "browse"]
    assert browse == [0, 1, 2]
    assert len(released) == 4


def test_partitions_are_merged_independently_and_revoked_ones_are_dropped() -> None:
    aligner: EventTimeAligner[str] = EventTimeAligner(TOPICS, max_idle_ms=0, max_queued_per_partition=100)
    aligner.assign([0, 1])
    aligner.add(_held("browse", 0, 0, 50))
    aligner.add(_held("browse", 1, 0, 10))
    dropped = aligner.drop([1])
    assert [h.partition for h in dropped] == [1]
    assert [h.partition for h in aligner.release(0, _caught_up_when({}))] == [0]
    assert aligner.held == 0


def test_a_long_queue_pauses_its_partition_until_it_drains_to_half() -> None:
    aligner: EventTimeAligner[str] = EventTimeAligner(TOPICS, max_idle_ms=10_000, max_queued_per_partition=4)
    aligner.assign([0])
    ends = {("browse", 0): 10, ("search", 0): 1, ("purchase", 0): 0}
    for offset in range(4):
        aligner.add(_held("browse", 0, offset, 100 + offset))
    pause, _ = aligner.over_limit()
    assert pause == {("browse", 0)}
    aligner.add(_held("search", 0, 0, 102))
    assert len(aligner.release(0, _caught_up_when(ends))) == 5  # search is caught up after its one event
    pause, resume = aligner.over_limit()
    assert ("browse", 0) in resume
    assert not pause


def test_a_limited_release_shares_the_limit_between_partitions_and_keeps_the_order() -> None:
    aligner: EventTimeAligner[str] = EventTimeAligner(TOPICS, max_idle_ms=0, max_queued_per_partition=100)
    aligner.assign([0, 1])
    ends = {(topic, partition): 100 for topic in TOPICS for partition in (0, 1)}
    for offset in range(6):
        aligner.add(_held("browse", 0, offset, 1_000 + offset))
    aligner.add(_held("browse", 1, 0, 5))
    caught_up = _caught_up_when({key: 0 for key in ends})
    first = aligner.release(0, caught_up, limit=4)
    # Partition 0 gets its half of the limit; partition 1 needs only one, and the rest is not handed out.
    assert [(h.partition, h.offset) for h in first] == [(0, 0), (0, 1), (1, 0)]
    assert aligner.held == 4
    rest = aligner.release(0, caught_up, limit=4)
    assert [h.offset for h in rest] == [2, 3, 4, 5]
    assert aligner.held == 0


def test_caught_up_needs_fresh_evidence_else_the_partition_waits_like_one_behind() -> None:
    # The chaos suite's broker scenario: after a restart the known end offsets were those of before the outage;
    # a partition taken for caught up on them let another topic's newer events go first.
    assert partition_progress(None, [5], 10.0, 5_000) is Progress.UNKNOWN
    assert partition_progress(3, [], 10.0, 5_000) is Progress.UNKNOWN
    assert partition_progress(3, [5, 4], 10.0, 5_000) is Progress.BEHIND
    assert partition_progress(5, [5, 4], 10.0, 5_000) is Progress.CAUGHT_UP
    assert partition_progress(5, [5, 4], 5_001.0, 5_000) is Progress.STALE
    assert partition_progress(5, [5], None, 5_000) is Progress.STALE, "known from the broker, never fetched"

    aligner: EventTimeAligner[str] = EventTimeAligner(
        TOPICS, max_idle_ms=500, max_queued_per_partition=100, max_lag_wait_ms=60_000
    )
    aligner.assign([2])
    aligner.add(_held("browse", 2, 0, 1_000))

    def stale_purchases(topic: str, partition: int, next_offset: int | None) -> Progress:
        return Progress.STALE if topic == "purchase" else Progress.CAUGHT_UP

    assert aligner.release(0, stale_purchases) == []
    assert aligner.release(59_999, stale_purchases) == [], "not the idle bound: the long one"
    assert [h.offset for h in aligner.release(60_000, stale_purchases)] == [0]


def test_nothing_is_caught_up_while_the_broker_settles_after_an_outage() -> None:
    # The chaos suite's broker scenario again: after a restart the producer's retries reach each partition when
    # its leader takes them; a partition answered fresh and empty a moment before its buffered events land.
    assert partition_progress(5, [5], 10.0, 5_000, settling=True) is Progress.STALE
    assert partition_progress(3, [5], 10.0, 5_000, settling=True) is Progress.BEHIND
    assert partition_progress(None, [5], 10.0, 5_000, settling=True) is Progress.UNKNOWN
    assert partition_progress(5, [5], 10.0, 5_000, settling=False) is Progress.CAUGHT_UP


def test_the_broker_is_away_when_no_input_partition_has_answered_a_fetch_lately(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="streams.worker.alignment")
    absence = BrokerAbsence(stale_after_ms=5_000, settle_ms=30_000)
    absence.observe(100_000, None)
    assert not absence.settling(100_000), "nothing fetched yet is no outage"
    absence.observe(100_000, 99_000)
    assert not absence.settling(100_000), "fetches answer"
    absence.observe(110_000, 104_000)
    assert absence.settling(110_000), "no fetch answered for 6 s: the broker is away"
    absence.observe(115_000, 114_900)
    assert absence.settling(115_000), "back, and settling"
    assert absence.settling(139_999)
    assert not absence.settling(140_000), "30 s after the broker was last found away"
    assert len(caplog.records) == 1, "logged once per outage"
    off = BrokerAbsence(stale_after_ms=5_000, settle_ms=0)
    off.observe(110_000, 104_000)
    assert not off.settling(110_000), "a window of 0 turns it off"
