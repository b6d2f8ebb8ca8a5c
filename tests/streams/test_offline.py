"""Offline reading: the one decoder, bad lines counted, per-user event-time order, the worker's conversion."""

from __future__ import annotations

import json
from pathlib import Path

from models.features import stable_hash64
from streams.bridge import model_sequence, to_model_input, to_state_event
from streams.contract.events import BrowseEvent, Event, PurchaseEvent, SearchEvent, encode_event
from streams.offline.histories import (
    ReadReport,
    clickouts,
    group_by_user,
    max_query_terms,
    read_events,
    read_histories,
    read_split_histories,
)

TS = 1_767_225_600_000


def _write(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def _events() -> list[Event]:
    return [
        BrowseEvent(event_id="e1", user_id="u2", ts_ms=TS + 50, item_id="i1", category="c"),
        SearchEvent(event_id="e2", user_id="u1", ts_ms=TS + 10, query="one two three four five six"),
        BrowseEvent(event_id="e3", user_id="u2", ts_ms=TS + 20, item_id="i2"),
        PurchaseEvent(event_id="e4", user_id="u2", ts_ms=TS + 20, item_id="i3", quantity=2, price=9.5, currency="EUR"),
        BrowseEvent(event_id="e5", user_id="u1", ts_ms=TS + 5, item_id="i1"),
    ]


def test_bad_lines_are_counted_by_reason_and_skipped(tmp_path: Path) -> None:
    good = [encode_event(e) for e in _events()]
    bad_schema = json.dumps({**json.loads(good[0]), "schema": 2}).encode()
    no_item = json.dumps({k: v for k, v in json.loads(good[0]).items() if k != "item_id"}).encode()
    path = _write(tmp_path / "e.jsonl", [good[0], b"not json", b"", bad_schema, *good[1:], no_item, b"[1]"])
    report = ReadReport()
    events = list(read_events(path, report))
    assert events == _events()
    assert report.lines == 9 and report.events == 5 and report.bad_lines == 4
    assert report.bad == {"not_json": 1, "unsupported_schema": 1, "missing_field": 1, "not_object": 1}
    assert [(n, reason) for n, reason, _ in report.first_bad] == [
        (2, "not_json"),
        (4, "unsupported_schema"),
        (9, "missing_field"),
        (10, "not_object"),
    ]
    # The operator learns which field and why, never a value.
    assert "9: missing_field (field 'item_id' is required)" in report.summary()
    assert "4 bad lines" in report.summary() and "i1" not in report.summary()


def test_with_a_clock_an_event_dated_too_far_ahead_is_a_bad_line(tmp_path: Path) -> None:
    ahead = BrowseEvent(event_id="f", user_id="u9", ts_ms=TS + 3_600_000, item_id="i1")
    path = _write(tmp_path / "e.jsonl", [encode_event(e) for e in [*_events(), ahead]])
    assert list(read_events(path)) == [*_events(), ahead]  # no clock: any time is read as it is
    report = ReadReport()
    assert list(read_events(path, report, now_ms=TS)) == _events()  # an hour ahead of the clock: refused
    assert report.bad == {"ts_out_of_range": 1}


def _worker_order(*ids: str) -> list[str]:
    """Event ids of equal time in the worker's order (by the id's hash)."""
    return sorted(ids, key=stable_hash64)


def test_histories_are_per_user_in_the_worker_order_with_the_worker_conversion(tmp_path: Path) -> None:
    events = _events()
    duplicate = BrowseEvent(event_id="e1", user_id="u2", ts_ms=TS + 1, item_id="other")
    path = _write(tmp_path / "e.jsonl", [encode_event(e) for e in [*events, duplicate]])
    histories, report = read_histories(path)
    assert report.duplicates == 1
    assert histories.user_ids == ["u1", "u2"]
    # e3 and e4 share a timestamp: the worker breaks the tie by event-id hash, whatever the arrival order.
    assert [[e.event_id for e in h] for h in histories.events] == [["e5", "e2"], [*_worker_order("e3", "e4"), "e1"]]
    terms = max_query_terms()
    assert terms == 4
    for user, history, inputs in zip(histories.user_ids, histories.events, histories.inputs, strict=True):
        assert inputs == [to_model_input(to_state_event(e, terms)) for e in history]
        assert inputs == model_sequence([e for e in events if e.user_id == user], terms)
    assert len(histories.inputs[0][1].query_terms) == 4  # the worker keeps four terms, so does the offline path
    assert histories.item_ids() == {stable_hash64(i): i for i in ("i1", "i2", "i3")}
    assert histories.is_test == [[False, False], [False, False, False]]


def test_grouping_does_not_depend_on_the_file_order() -> None:
    events = _events()
    a, b = group_by_user(events), group_by_user(list(reversed(events)))
    assert a == b


def test_explicit_split_merges_both_files_per_user(tmp_path: Path) -> None:
    events = _events()
    train = _write(tmp_path / "train.jsonl", [encode_event(e) for e in events[:3]])
    test = _write(tmp_path / "test.jsonl", [encode_event(e) for e in [*events[3:], events[0]]])
    histories, train_report, test_report = read_split_histories(train, test)
    assert train_report.events == 3 and test_report.events == 3 and test_report.duplicates == 1
    assert [[e.event_id for e in h] for h in histories.events] == [["e5", "e2"], [*_worker_order("e3", "e4"), "e1"]]
    flags = {"e5": True, "e2": False, "e3": False, "e4": True, "e1": False}
    assert histories.is_test == [[flags[e.event_id] for e in h] for h in histories.events]


def test_clickouts_take_purchase_targets_with_impressions() -> None:
    histories = group_by_user(_events())
    shown = {"e4": ["i9", "i3"], "e1": ["i1"]}  # e1 is a browse: not a click-out
    found = clickouts(histories, [[1], [0, 1, 2]], shown)
    assert len(found) == 1
    assert found[0].query == (1, [e.event_id for e in histories.events[1]].index("e4"))
    assert found[0].clicked == stable_hash64("i3")
    assert found[0].shown == (stable_hash64("i9"), stable_hash64("i3"))


def test_explicit_split_counts_duplicates_in_the_file_they_are_in(tmp_path: Path) -> None:
    events = _events()
    repeated = BrowseEvent(event_id="e3", user_id="u2", ts_ms=TS + 30, item_id="other")  # e3 again, in train
    train = _write(tmp_path / "train.jsonl", [encode_event(e) for e in [*events[:3], repeated]])
    test = _write(tmp_path / "test.jsonl", [encode_event(e) for e in events[3:]])
    _, train_report, test_report = read_split_histories(train, test)
    assert (train_report.duplicates, test_report.duplicates) == (1, 0)
    assert "duplicate" in train_report.summary() and "duplicate" not in test_report.summary()
