"""The standard (session-based) protocol: the filtering rules, the ranking rule and the statistics."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from models.checkpoint import untrained_model
from models.encoder import EncoderConfig, ProfileEncoder
from models.events import EventInput, make_event_input, stable_hash64
from models.sessionrec import (
    MostPopular,
    ProtocolError,
    SessionEncoder,
    SessionItemKNN,
    StandardData,
    bootstrap_interval,
    evaluate_standard,
    prepare,
    queries_of,
    rank_all,
    read_session_tsv,
    session_split,
    summarise_runs,
    write_session_tsv,
)
from models.training import TrainConfig, train

T0 = 1_700_000_000_000


def _browse(item: str, ts: int) -> EventInput:
    return make_event_input("browse", T0 + ts, item_id=item)


def _sessions(
    rows: list[tuple[str, list[str]]], test: bool
) -> tuple[list[list[EventInput]], list[list[str]], list[list[bool]]]:
    histories = [[_browse(item, 1000 * i) for i, item in enumerate(items)] for _, items in rows]
    keys = [[key] * len(items) for key, items in rows]
    return histories, keys, [[test] * len(items) for _, items in rows]


Parts = tuple[list[list[EventInput]], list[list[str]], list[list[bool]]]


def _join(train: Parts, test: Parts) -> Parts:
    return train[0] + test[0], train[1] + test[1], train[2] + test[2]


def _data() -> StandardData:
    train = _sessions([("a", ["1", "1", "2", "3"]), ("b", ["2", "3"]), ("c", ["4"]), ("d", ["3", "2", "2"])], False)
    test = _sessions([("e", ["1", "9", "1", "2"]), ("f", ["2", "9"]), ("g", ["3", "3", "1"])], True)
    return prepare(*_join(train, test))


def test_rules_drop_repeats_short_sessions_and_unknown_test_items() -> None:
    data = _data()
    h = stable_hash64
    assert [s.items for s in data.train] == [(h("1"), h("2"), h("3")), (h("2"), h("3")), (h("3"), h("2"))]
    assert set(data.candidates) == {h("1"), h("2"), h("3")}  # "4" was only in a session of length 1
    assert data.candidates[0] in {h("2"), h("3")}  # most frequent first (3 sessions each)
    # e: 1 9 1 2 -> 1 1 2 (9 unknown) -> 1 2; f: 2 9 -> 2 (dropped); g: 3 3 1 -> 3 1
    assert [s.items for s in data.test] == [(h("1"), h("2")), (h("3"), h("1"))]
    assert data.test[0].positions == (0, 3)  # the target's own event, so the profile sees what came before it
    assert data.predictions == 2 and data.counts["test_rows"] == 4


def test_ranks_follow_the_shared_tie_rule_and_exclude_the_previous_item() -> None:
    data = _data()
    queries = queries_of(data)
    popular = MostPopular(data)
    ranks = rank_all(popular, data, queries)
    column = {item: c for c, item in enumerate(data.candidates)}
    for rank, (s, t) in zip(ranks, queries, strict=True):
        target, previous = column[data.test[s].items[t]], column[data.test[s].items[t - 1]]
        assert rank == 1 + target - (1 if previous < target else 0)  # popularity order, previous removed
    kept = rank_all(popular, data, queries, exclude_previous=False)
    assert (kept >= ranks).all()


def test_item_knn_scores_co_occurring_items_of_the_last_item() -> None:
    data = _data()
    scores = SessionItemKNN(data, shrink=0.0).score(data, [(0, 1)])  # last item "1"
    column = {item: c for c, item in enumerate(data.candidates)}
    assert scores[0, column[stable_hash64("2")]] > 0 and scores[0, column[stable_hash64("1")]] == 0


def test_the_encoder_sees_everything_before_the_target_event() -> None:
    data = _data()
    model = untrained_model(EncoderConfig(embedding_dim=8, hidden_dim=8, recency_memory=True), seed=0)
    scorer = SessionEncoder(model, data)
    got = scorer.score(data, [(0, 1)])  # session e, target at history position 3: profile after events 0..2
    expected = model.encode(data.histories[data.test[0].user][:3])
    assert torch.isinf(got).all()  # an untrained model knows no item: every candidate is unknown
    assert torch.allclose(scorer._cache[data.test[0].user][2], expected, atol=1e-6)


def test_report_has_intervals_and_paired_differences() -> None:
    rnd = random.Random(0)
    rows = [(f"s{i}", [str(rnd.randrange(12)) for _ in range(rnd.randrange(2, 7))]) for i in range(120)]
    train = _sessions(rows[:90], False)
    test = _sessions(rows[90:], True)
    data = prepare(*_join(train, test))
    histories = [h for h, flags in zip(data.histories, train[2] + test[2], strict=True) if not flags[0]]
    model, _ = train_tiny(histories)
    report = evaluate_standard(data, [SessionEncoder(model, data), MostPopular(data), SessionItemKNN(data)], samples=50)
    assert set(report.metrics) == {"encoder", "most-popular", "item-kNN"}
    assert set(report.paired) == {"encoder - most-popular", "encoder - item-kNN"}
    for method, m in report.metrics.items():
        low, high = report.intervals[method]["recall@20"]
        assert low <= m["recall@20"] <= high
        assert m["recall@5"] <= m["recall@10"] <= m["recall@20"] and m["mrr@5"] <= m["mrr@20"] <= m["recall@20"]
    assert "| paired difference |" in report.format_table()


def train_tiny(histories: list[list[EventInput]]) -> tuple[ProfileEncoder, dict[str, Any]]:
    config = TrainConfig(epochs=1, batch_size=16, negatives=8, num_threads=1, validation_fraction=0.0)
    return train(histories, config, EncoderConfig(embedding_dim=8, hidden_dim=8, recency_memory=True), progress=False)


def test_bootstrap_interval_is_over_sessions() -> None:
    values = np.asarray([1.0, 1.0, 0.0, 0.0])
    assert bootstrap_interval(values, np.asarray([0, 0, 1, 1]), 2, samples=200) == (0.0, 1.0)
    assert bootstrap_interval(np.ones(3), np.asarray([0, 1, 2]), 3, samples=20) == (1.0, 1.0)


def test_tsv_round_trip_and_session_split(tmp_path: Path) -> None:
    data = _data()
    path = tmp_path / "test.tsv"
    assert write_session_tsv(data, path, test=True) == 4
    histories, keys = read_session_tsv(path)
    items = [line.split("\t")[1] for line in path.read_text().splitlines()[1:]]
    assert items == [str(i) for s in data.test for i in s.items]  # item ids in the file are the item hashes
    assert [len(h) for h in histories] == [2, 2] and keys[0] == ["1", "1"]
    (tmp_path / "bad.tsv").write_text("a\tb\n")
    with pytest.raises(ProtocolError):
        read_session_tsv(tmp_path / "bad.tsv")
    flags = session_split([[_browse("1", 0), _browse("2", 5000)], [_browse("3", 9000)]], [["x", "x"], ["y"]], 0.3)
    assert flags == [[False, False], [True]]


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ("9\t5\tnan", "Time is not a finite number"),
        ("9\t5\tinf", "Time is not a finite number"),
        ("9\t5\t-inf", "Time is not a finite number"),
        ("9\t5\t1e30", "Time is too far from 1970 to be held in whole milliseconds"),
        ("9\t5\tnoon", "Time is not a number"),
        ("9\t\t1396860669.2", "ItemId is empty"),
        ("9\t \t1396860669.2", "ItemId is empty"),
        ("\t5\t1396860669.2", "SessionId is empty"),
        ("9 5 1396860669.2", "not SessionId<TAB>ItemId<TAB>Time (1 tab-separated fields)"),
    ],
)
def test_a_bad_tsv_row_is_a_protocol_error_naming_its_line(tmp_path: Path, row: str, problem: str) -> None:
    path = tmp_path / "bad.tsv"
    path.write_text("SessionId\tItemId\tTime\n1\t5\t1396860669.2\n1\t6\t1396860670.2\n" + row + "\n")
    with pytest.raises(ProtocolError) as raised:
        read_session_tsv(path)
    assert str(raised.value) == f"{path}: line 4: {problem}"


def test_summarise_runs() -> None:
    summary = summarise_runs({"recall@20": [0.5, 0.7, 0.6]})["recall@20"]
    assert summary["median"] == 0.6 and summary["min"] == 0.5 and summary["max"] == 0.7 and summary["runs"] == 3


def test_a_target_the_model_has_no_vector_for_is_a_miss_not_ranked_by_popularity() -> None:
    data = _data()
    queries = queries_of(data)
    # An untrained model knows none of the candidates: every target is a miss, never most-popular's rank.
    unknown = rank_all(SessionEncoder(untrained_model(EncoderConfig(embedding_dim=8, hidden_dim=8), seed=0), data),
                       data, queries)  # fmt: skip
    assert (unknown == len(data.candidates) + 1).all()
    assert (rank_all(MostPopular(data), data, queries) <= len(data.candidates)).all()


def test_a_session_in_both_files_is_refused() -> None:
    # u1's session s1: three events in the training file, the fourth in the test file.
    history = [[_browse(item, 1000 * i) for i, item in enumerate(["1", "2", "3", "4"])]]
    with pytest.raises(ProtocolError, match="both the training and the test file"):
        prepare(history, [["s1"] * 4], [[False, False, False, True]])
