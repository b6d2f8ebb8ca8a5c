"""The chaos suite's own logic, without a broker: reproducible files, the hostile catalogue, the scoring, the
results section. A harness that miscounted would make every table it writes worthless."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from kafka.partitioner.default import murmur2

from bench.chaos.data import SMALL, chunks, interleave, write_event_file
from bench.chaos.expected import ExpectedProfile
from bench.chaos.hostile import SMALL_KINDS, Expect, Hostile, catalogue, pick_victims
from bench.chaos.kafka_io import DeadLetterSeen
from bench.chaos.report import BEGIN, END, RunInfo, render, write_section
from bench.chaos.scenarios import ScenarioResult
from bench.chaos.score import aggregate_differences, score_dead_letters, score_hostile, score_valid
from streams.contract.profile import ProfileUpdated

NOW_MS = 1_795_900_000_000


def _expected(count: int, ts: int = 5, dim: int = 4) -> ExpectedProfile:
    embedding = np.zeros(dim, dtype=np.float32)
    embedding[0] = 1.0
    return ExpectedProfile(count, ts, embedding, {"browse_count_1h": count, "purchase_spend_30d": 1.5})


def _profile(user: str, count: int, ts: int = 5, first: float = 1.0, spend: float = 1.5) -> ProfileUpdated:
    return ProfileUpdated(
        user_id=user, version=1, model_version="m", embedding=[first, 0.0, 0.0, 0.0], updated_at_ms=0,
        last_event_ts_ms=ts, event_count=count, aggregates={"browse_count_1h": count, "purchase_spend_30d": spend},
    )  # fmt: skip


def test_event_files_are_reproducible_and_in_event_order_per_user(tmp_path: Path) -> None:
    spec = SMALL.anchored(NOW_MS)
    one = write_event_file(spec, tmp_path / "one")
    two = write_event_file(spec, tmp_path / "two")
    assert one.sha256 == two.sha256
    assert len(one.events) == spec.events
    assert len({e.user_id for e in one.events}) > spec.users * 0.9
    newest: dict[str, int] = {}
    for event in one.events:
        assert event.ts_ms >= newest.get(event.user_id, 0)
        newest[event.user_id] = event.ts_ms
    span_h = (max(newest.values()) - min(e.ts_ms for e in one.events)) / 3_600_000
    assert span_h > 8, "the file must span hours, so that the topics race in event time during a drain"
    assert max(newest.values()) < NOW_MS, "the whole file lies in the past"


def test_chunks_and_interleave_keep_everything_in_order() -> None:
    assert chunks(list(range(10)), 3) == [[0, 1, 2], [3, 4, 5, 6], [7, 8, 9]]
    mixed = interleave(list(range(100)), [(-1, 50), (-2, -1), (-3, 99)], seed=3)
    assert [x for x in mixed if x >= 0] == list(range(100))
    assert mixed.index(-1) > mixed.index(50)
    assert mixed.index(-3) == len(mixed) - 1


def test_the_catalogue_has_over_40_kinds_with_an_expectation_each(tmp_path: Path) -> None:
    events = write_event_file(SMALL.anchored(NOW_MS), tmp_path).events
    victims = pick_victims(events, seed=1)
    rows = catalogue(NOW_MS, "t", victims)
    kinds = {h.kind for h, _ in rows}
    assert len(kinds) == len(rows) >= 40
    assert kinds >= SMALL_KINDS
    for hostile, after in rows:
        if hostile.expect is Expect.NOT_TWICE:
            assert after in {index for index, _ in victims}, "a replay follows the event it replays"
        if hostile.expect in (Expect.FOLD, Expect.EITHER):
            assert hostile.fold is not None and hostile.at_end
        if hostile.wrong_partition:
            assert hostile.key is not None
            assert hostile.partition(4) != (murmur2(hostile.key) & 0x7FFFFFFF) % 4
    reasons = {h.reason for h, _ in rows if h.expect is Expect.DEAD_LETTER}
    assert {"wrong_partition", "missing_key", "key_mismatch", "too_large", "not_json"} <= reasons
    assert any(h.value is not None and len(h.value) > 1_000_000 for h, _ in rows)


def test_lost_duplicated_and_wrong_are_counted_per_user() -> None:
    expected = {u: _expected(10) for u in ("a", "b", "c", "d", "e", "f")}
    final = {
        "a": _profile("a", 10),
        "b": _profile("b", 7),  # 3 lost
        "c": _profile("c", 12),  # 2 applied twice
        "e": _profile("e", 10, first=0.9),  # right count, other embedding
        "f": _profile("f", 10, spend=1.6),  # right count, other aggregates
    }  # "d" has no profile: 10 lost
    tally = score_valid(expected, final)
    assert (tally.users, tally.events) == (6, 60)
    assert (tally.lost, tally.duplicated) == (13, 2)
    assert (tally.users_missing, tally.users_short, tally.users_over) == (1, 1, 1)
    assert (tally.wrong_embedding, tally.wrong_aggregates, tally.wrong_last_ts) == (1, 1, 0)
    assert tally.worst_embedding_diff == pytest.approx(0.1)


def test_aggregates_compare_floats_with_a_tolerance_and_everything_else_exactly() -> None:
    want = {"n": 3, "w": 0.1234567, "top": [{"hash": "00ff", "weight": 2.0}]}
    assert aggregate_differences(want, {"n": 3, "w": 0.12345670001, "top": [{"hash": "00ff", "weight": 2.0}]}) == []
    assert aggregate_differences(want, {"n": 4, "w": 0.1234567, "top": [{"hash": "00fe", "weight": 2.0}]}) == [
        "n",
        "top",
    ]
    assert aggregate_differences(want, {"n": 3, "w": 0.1234567}) == ["top"]


def test_every_hostile_message_is_judged_by_its_expectation() -> None:
    def hostile(kind: str, expect: Expect, reason: str | None = None, fold: tuple[str, int] | None = None) -> Hostile:
        return Hostile(kind, "browse", b"k", b"v", expect, reason, fold=fold)

    sent = {
        ("t", 0, 1): hostile("dead-ok", Expect.DEAD_LETTER, "not_json"),
        ("t", 0, 2): hostile("dead-other-reason", Expect.DEAD_LETTER, "not_json"),
        ("t", 0, 3): hostile("dead-missing", Expect.DEAD_LETTER, "not_json"),
        ("t", 0, 4): hostile("fold-ok", Expect.FOLD, fold=("h1", 7)),
        ("t", 0, 5): hostile("fold-dead", Expect.FOLD, fold=("h2", 7)),
        ("t", 0, 6): hostile("either-folded", Expect.EITHER, fold=("h3", 7)),
        ("t", 0, 7): hostile("either-lost", Expect.EITHER, fold=("h4", 7)),
        ("t", 0, 8): hostile("replay", Expect.NOT_TWICE),
        ("t", 0, 9): hostile("dead-no-reason", Expect.DEAD_LETTER, "not_json"),
    }
    letters = [
        DeadLetterSeen(("t", 0, 1), "not_json", "decode"),
        DeadLetterSeen(("t", 0, 1), "not_json", "decode"),  # a redelivery
        DeadLetterSeen(("t", 0, 2), "not_utf8", "decode"),
        DeadLetterSeen(("t", 0, 5), "too_late", "fold"),
        DeadLetterSeen(("t", 0, 9), None, "decode"),
        DeadLetterSeen(("t", 1, 0), "too_late", "fold"),  # a valid event's
        DeadLetterSeen(("x", 0, 0), "not_json", "decode"),  # nothing the suite sent
    ]
    dead, by_source = score_dead_letters(letters, {("t", 1, 0): "u"}, sent)
    assert dead.too_late == 1 and dead.repeated == 1 and dead.unknown_source == 1 and dead.without_reason == 1
    final = {"h1": _profile("h1", 1, ts=7), "h2": _profile("h2", 1, ts=7), "h3": _profile("h3", 1, ts=7)}
    tally = score_hostile(sent, by_source, final)
    failed = sorted(f.split(":")[0] for f in tally.failures)
    assert failed == ["dead-missing", "dead-no-reason", "either-lost", "fold-dead"]
    assert tally.met == 5
    assert tally.other_reason == ["dead-other-reason: not_utf8 (the contract implies not_json)"]


def test_the_results_section_replaces_only_what_is_between_the_markers(tmp_path: Path) -> None:
    doc = tmp_path / "reliability.md"
    doc.write_text(f"# Title\n\nprose\n\n{BEGIN}\nold table\n{END}\n\nmore prose\n")
    write_section(doc, "new table\n")
    assert doc.read_text() == f"# Title\n\nprose\n\n{BEGIN}\nnew table\n{END}\n\nmore prose\n"


def test_the_report_tells_a_republished_profile_from_a_stale_one() -> None:
    info = RunInfo("python -m bench.chaos", "2026-11-30 08:00", "abc1234", (), (), "data", "settings", "machine")
    result = ScenarioResult("broker", version_repeats=7, version_regressions=2, finished=True)
    text = render([result], info)
    assert "7 profiles published again with the same version" in text
    assert "2 profiles with a version below the user's last" in text
    assert "did not increase" not in text
