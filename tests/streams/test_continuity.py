"""ContinuityCheck without Kafka: no input offset is skipped unless the broker confirms the hole."""

from __future__ import annotations

from streams.worker.continuity import ContinuityCheck, Verdict

TP = ("events.browse", 0)


def _verdicts(check: ContinuityCheck, offsets: list[int]) -> list[Verdict]:
    return [check.check(TP, offset) for offset in offsets]


def test_consecutive_offsets_from_the_start_position_are_taken() -> None:
    check = ContinuityCheck()
    check.start(TP, 2)
    assert _verdicts(check, [2, 3, 4]) == [Verdict.TAKE] * 3
    assert check.expected(TP) == 5


def test_a_jump_is_probed_and_the_missing_offsets_are_read_again() -> None:
    # Measured on the worker: 2..5 arrived, then 8, after faust's seek back to the committed offsets.
    check = ContinuityCheck()
    check.start(TP, 2)
    assert _verdicts(check, [2, 3, 4, 5]) == [Verdict.TAKE] * 4
    assert check.check(TP, 8) is Verdict.PROBE
    assert check.expected(TP) == 6  # where the worker seeks back to
    # What the fetch before the seek still hands over is dropped: it comes again.
    assert _verdicts(check, [9, 10]) == [Verdict.DROP, Verdict.DROP]
    # After the seek: the missing offsets first, then everything after them, nothing skipped.
    assert _verdicts(check, [6, 7, 8, 9]) == [Verdict.TAKE] * 4


def test_a_hole_the_broker_confirms_is_accepted() -> None:
    # A transactional producer's control records take offsets 6 and 7: asked again from 6, the broker gives 8.
    check = ContinuityCheck()
    check.start(TP, 6)
    assert check.check(TP, 8) is Verdict.PROBE
    assert check.check(TP, 8) is Verdict.TAKE_AFTER_GAP
    assert _verdicts(check, [9, 10]) == [Verdict.TAKE] * 2


def test_offsets_below_the_expected_one_were_received_already() -> None:
    check = ContinuityCheck()
    check.start(TP, 10)
    assert _verdicts(check, [10, 11]) == [Verdict.TAKE] * 2
    # faust seeks back to the committed offset after a rebalance: the copies are not taken twice.
    assert _verdicts(check, [10, 11, 12]) == [Verdict.DROP, Verdict.DROP, Verdict.TAKE]


def test_an_unknown_start_takes_the_first_message_and_a_new_assignment_starts_over() -> None:
    check = ContinuityCheck()
    check.start(TP, None)
    assert check.expected(TP) is None
    assert check.check(TP, 40) is Verdict.TAKE
    assert check.check(TP, 42) is Verdict.PROBE
    check.forget([0])
    assert check.expected(TP) is None
    check.start(TP, 30)
    assert _verdicts(check, [30, 31]) == [Verdict.TAKE] * 2
    # Partitions are followed apart: another partition's offsets do not disturb this one.
    assert check.check(("events.browse", 1), 0) is Verdict.TAKE
    assert check.check(TP, 32) is Verdict.TAKE


def test_a_probe_whose_seek_does_not_land_is_asked_again_once_per_timeout() -> None:
    check = ContinuityCheck()
    check.start(TP, 6)
    assert check.check(TP, 8, now_ms=1_000) is Verdict.PROBE
    assert check.overdue_probes(now_ms=5_000, timeout_ms=10_000) == []
    assert check.check(TP, 9, now_ms=11_000) is Verdict.DROP
    assert check.overdue_probes(now_ms=11_000, timeout_ms=10_000) == [(TP, 6)]
    assert check.overdue_probes(now_ms=12_000, timeout_ms=10_000) == []  # dated anew
    assert check.check(TP, 6, now_ms=12_500) is Verdict.TAKE
    assert check.overdue_probes(now_ms=30_000, timeout_ms=10_000) == []  # resolved


def test_messages_checked_before_the_start_is_known_keep_their_expectation() -> None:
    # faust can hand on messages of a new assignment before the committed offsets it sought back to are told:
    # the start must not go back under them (they would be taken twice), nor past any message not yet checked.
    check = ContinuityCheck()
    assert _verdicts(check, [30, 31]) == [Verdict.TAKE] * 2
    check.start(TP, 30)
    assert check.expected(TP) == 32
    assert _verdicts(check, [30, 31, 32]) == [Verdict.DROP, Verdict.DROP, Verdict.TAKE]
