"""Evaluation protocol: targets, the shared ranking rule, the baselines and click-outs on hand-made data."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

import numpy as np
import pytest
import torch
from torch import Tensor

from models.baselines import SELF_SCORE, ItemKNNScorer, PopularityScorer, sessions
from models.encoder import EncoderConfig, ProfileEncoder
from models.evaluation import (
    SHOWN_ORDER,
    ClickOut,
    EncoderScorer,
    EvalSplit,
    Targets,
    candidate_ranks,
    clickout_mrr,
    clickout_rank,
    evaluate,
    explicit_split,
    rank_targets,
    shown_order_mrr,
    time_split,
)
from models.features import EventInput, FeatureSpace, make_event_input, stable_hash64
from models.ranking import MISS
from tests.models.factories import random_history

MINUTE_MS = 60_000


def browse(item: str, minute: int) -> EventInput:
    return make_event_input("browse", minute * MINUTE_MS, item_id=item)


def search(minute: int) -> EventInput:
    return make_event_input("search", minute * MINUTE_MS, query="hotel")


def space(*items: str) -> FeatureSpace:
    """A vocabulary with `items` at indices 1.. in the given order (column c = items[c])."""
    return FeatureSpace(item_hashes=[stable_hash64(i) for i in items])


class FixedScorer:
    """Scores every query with the same row."""

    name = "fixed"

    def __init__(self, row: Sequence[float]) -> None:
        self.row = torch.tensor(row, dtype=torch.float32)

    def score(self, histories: Sequence[Sequence[EventInput]], queries: Sequence[tuple[int, int]]) -> Tensor:
        return self.row.unsqueeze(0).expand(len(queries), -1)


class OracleScorer:
    """Knows the answer: scores the item at position j highest (a leak no real method has; for the tests)."""

    name = "oracle"

    def __init__(self, features: FeatureSpace) -> None:
        self.features = features

    def score(self, histories: Sequence[Sequence[EventInput]], queries: Sequence[tuple[int, int]]) -> Tensor:
        out = torch.zeros(len(queries), self.features.num_items - 1)
        for row, (b, j) in enumerate(queries):
            index = self.features.item_index(histories[b][j].item_hash)
            if index:
                out[row, index - 1] = 1.0
        return out


def test_candidate_ranks_break_ties_by_vocabulary_order() -> None:
    scores = torch.tensor([[3.0, 1.0, 3.0, 2.0], [0.0, 0.0, 0.0, 0.0]])
    assert candidate_ranks(scores, torch.tensor([2, 3])).tolist() == [2, 4]
    assert candidate_ranks(scores, torch.tensor([0, 0])).tolist() == [1, 1]
    assert candidate_ranks(scores, torch.tensor([1, 1])).tolist() == [4, 2]


def test_targets_are_later_item_events_with_repeat_and_unknown_flags() -> None:
    history = [browse("a", 0), search(1), browse("a", 2), browse("b", 3), browse("zz", 4), search(5)]
    split = explicit_split([history], [[False, False, True, True, True, True]])
    assert split.targets == [[2, 3, 4]]  # searches are never targets
    assert split.train == [history[:2]]
    targets = Targets.of(split, space("a", "b"))
    assert targets.queries == [(0, 2), (0, 3), (0, 4)]
    assert targets.columns.tolist() == [0, 1, -1]  # "zz" is unknown to the model
    assert targets.repeats.tolist() == [True, False, False]  # the search between two "a" does not break a repeat
    # A user's first event is never a target, even in the test part.
    assert explicit_split([history], [[True] * 6]).targets == [[2, 3, 4]]


def test_time_split_holds_out_the_latest_events_as_targets() -> None:
    histories = [[browse("a", 0), browse("b", 1), browse("c", 8), browse("d", 9)], [browse("b", 2), browse("c", 7)]]
    split = time_split(histories, test_fraction=0.5)
    assert split.cutoff_ms == 7 * MINUTE_MS
    assert split.train == [histories[0][:2], histories[1][:1]]
    assert split.targets == [[2, 3], [1]]


def test_rank_targets_uses_one_rule_and_misses_unknown_items() -> None:
    features = space("a", "b", "c")
    history = [browse("a", 0), browse("c", 1), browse("b", 2), browse("new", 3)]
    split = EvalSplit([history], [history[:1]], [[1, 2, 3]])
    targets = Targets.of(split, features)
    ranks = rank_targets(FixedScorer([0.5, 0.9, 0.5]), split.histories, targets, chunk=2)
    assert ranks.tolist() == [3.0, 1.0, MISS]  # c ties with a, which comes first in the vocabulary


def test_popularity_counts_only_the_training_part() -> None:
    features = space("a", "b", "c")
    train = [[browse("c", 0), browse("c", 1), browse("b", 2), browse("unknown", 3)]]
    full = [[*train[0], browse("a", 10), browse("a", 11), browse("a", 12)]]
    scorer = PopularityScorer(features, train)
    assert scorer.score(full, [(0, 5)]).tolist() == [[0.0, 1.0, 2.0]]
    targets = Targets.of(EvalSplit(full, train, [[4, 5, 6]]), features)
    assert rank_targets(scorer, full, targets).tolist() == [3.0, 3.0, 3.0]


def test_sessions_are_cut_at_long_gaps() -> None:
    history = [browse("a", 0), browse("b", 20), browse("c", 60), search(61)]
    assert [len(s) for s in sessions(history, gap_ms=30 * MINUTE_MS)] == [2, 2]


def test_item_knn_scores_session_cosine_of_the_last_item() -> None:
    features = space("a", "b", "c", "d")
    train = [
        [browse("a", 0), browse("b", 1), browse("b", 2)],  # session {a, b}
        [browse("a", 0), browse("c", 1), browse("a", 100), browse("b", 101)],  # sessions {a, c} and {a, b}
        [browse("d", 0)],
    ]
    scorer = ItemKNNScorer(features, train, shrink=1.0)
    # n_a = 3, n_b = 2, n_c = 1; co(a, b) = 2, co(a, c) = 1; b and c never meet.
    query = [[browse("x", 0), browse("a", 1), search(2), browse("q", 3)]]
    row = scorer.score(query, [(0, 3)])[0]  # the last item before position 3 is "a" (the search is skipped)
    assert row.tolist() == pytest.approx([SELF_SCORE, 2 / (math.sqrt(6) + 1), 1 / (math.sqrt(3) + 1), 0.0])
    assert scorer.score(query, [(0, 1)]).abs().sum() == 0  # last item "x" is unknown: all zeros
    assert scorer.score(query, [(0, 0)]).abs().sum() == 0  # no event before


def test_item_knn_falls_back_to_the_vocabulary_order() -> None:
    features = space("a", "b", "c")
    history = [browse("x", 0), browse("c", 1)]
    targets = Targets.of(EvalSplit([history], [[]], [[1]]), features)
    assert rank_targets(ItemKNNScorer(features, [[]]), [history], targets).tolist() == [3.0]


def test_encoder_scorer_ranks_with_the_profile_of_the_events_before() -> None:
    histories = [random_history(random.Random(seed), n) for seed, n in ((1, 9), (2, 4))]
    features = FeatureSpace.fit(histories)
    torch.manual_seed(0)
    model = ProfileEncoder(EncoderConfig(embedding_dim=8, hidden_dim=8, recency_memory=True), features).eval()
    scorer = EncoderScorer(model)
    queries = [(0, 5), (1, 0), (0, 9), (1, 3)]
    scores = scorer.score(histories, queries)
    items = model.item_vectors()[1:]
    for row, (b, j) in enumerate(queries):
        expected = items @ (model.encode(histories[b][:j]) if j else model.initial_profile())
        assert torch.allclose(scores[row], expected, atol=1e-5)


def test_evaluate_counts_unknown_targets_as_misses_for_every_method() -> None:
    features = space("a", "b", "c")
    histories = [
        [browse("a", 0), browse("b", 1), browse("b", 10), browse("new", 11), browse("c", 12)],
        [browse("c", 2), search(13), browse("a", 14)],
    ]
    split = time_split(histories, test_fraction=0.6)  # cutoff at minute 10
    assert split.targets == [[2, 3, 4], [2]]
    model = ProfileEncoder(EncoderConfig(embedding_dim=4, hidden_dim=4), features).eval()
    oracle = OracleScorer(features)
    report = evaluate(model, split, scorers=[oracle, PopularityScorer(features, split.train)], k=2)
    assert report.counts["targets"] == 4 and report.counts["oov_targets"] == 1
    assert report.counts["repeat_targets"] == 1 and report.counts["non_repeat_targets"] == 3
    assert set(report.next_item["all"]) == {"encoder", "oracle", "popularity"}
    assert report.next_item["all"]["oracle"]["recall@2"] == 0.75  # the unknown item is a miss even for the oracle
    assert report.next_item["known"]["oracle"]["mrr@2"] == 1.0
    assert report.next_item["non_repeat"]["oracle"]["recall@2"] == pytest.approx(2 / 3)
    # Popularity from the training part: a 1, b 1, c 1 -> ties, vocabulary order a, b, c.
    assert report.next_item["known"]["popularity"]["mrr@2"] == pytest.approx((1 / 2 + 0 + 1) / 3)
    table = report.format_table()
    assert "| oracle | 0.7500 |" in table and "25.0% with an item unknown" in table


@pytest.mark.parametrize(
    ("known", "clicked_at", "slots", "strict"),
    [
        ([True, True, True, True], 2, 2, 2),  # everything known: both rules are a sort by score
        ([False, True, False, True], 3, 2, 1),  # known items 1 and 3 swap their slots; strict puts them first
        ([False, True, False, True], 0, 1, 3),  # an unknown item keeps its slot, or goes after the known ones
        ([False, False, False, False], 2, 3, 3),  # nothing known: the shown order
    ],
)
def test_clickout_rank_rules(known: list[bool], clicked_at: int, slots: int, strict: int) -> None:
    scores = np.array([0.1, 0.2, 0.3, 0.9])
    mask = np.array(known)
    assert clickout_rank(scores, mask, clicked_at, slots=True) == slots
    assert clickout_rank(scores, mask, clicked_at, slots=False) == strict


def test_clickout_ties_keep_the_shown_order() -> None:
    assert clickout_rank(np.zeros(4), np.ones(4, dtype=bool), 2, slots=True) == 3


def test_clickout_mrr_against_the_shown_order() -> None:
    features = space("a", "b", "c")
    h = [stable_hash64(i) for i in ("a", "b", "c", "x")]
    clicks = [ClickOut((0, 1), h[2], (h[3], h[1], h[2])), ClickOut((0, 1), h[0], (h[0], h[3]))]
    assert shown_order_mrr(clicks) == pytest.approx((1 / 3 + 1) / 2)
    mrr = clickout_mrr(FixedScorer([0.0, 0.1, 0.5]), [[browse("a", 0), browse("b", 1)]], clicks, features)
    # First list: c outranks b, taking slot 2 (slots) or rank 1 (strict); second list: a alone is known.
    assert mrr == {"slots": pytest.approx((1 / 2 + 1) / 2), "strict": pytest.approx((1 + 1) / 2)}


def test_evaluate_reports_clickouts_and_skips_clicks_outside_the_list() -> None:
    features = space("a", "b")
    histories = [[browse("a", 0), browse("b", 1), browse("a", 2)]]
    split = EvalSplit(histories, [histories[0][:1]], [[1, 2]])
    h = [stable_hash64(i) for i in ("a", "b", "x")]
    clicks = [ClickOut((0, 1), h[1], (h[2], h[1])), ClickOut((0, 2), h[0], (h[1],))]
    model = ProfileEncoder(EncoderConfig(embedding_dim=4, hidden_dim=4), features).eval()
    report = evaluate(model, split, clicks, scorers=[FixedScorer([0.0, 1.0])])
    assert report.clickout["clickouts"] == 1 and report.clickout["clicked_not_shown"] == 1
    assert report.clickout["mrr"][SHOWN_ORDER] == 0.5
    assert report.clickout["mrr"]["fixed"] == {"slots": 0.5, "strict": 1.0}
