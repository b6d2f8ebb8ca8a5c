"""The offline evaluation protocol: one split, one set of targets, one ranking rule for every method.

Protocol (docs/evaluation.md says the same for readers):

* **Split.** Either by time (all events at or after the `1 - test_fraction` quantile of event times are the test
  part; `models.training.split_by_time`, the split early stopping uses too) or explicit (the caller marks the
  test events). Baselines are fitted on the training part only; the encoder must have been trained on it.
* **Targets.** Every browse or purchase event of the test part that is not the user's first event. The profile
  (or the baseline's query) that ranks target j of a user sees exactly the user's events 0..j-1, from both
  parts: that is what the stream would have published just before event j.
* **Candidates.** Every item the model knows (its vocabulary). A target whose item is unknown cannot be ranked
  by anyone and counts as a miss for every method; the report says how many there are.
* **Ranking rule.** `rank = 1 + #(candidates scoring higher) + #(candidates scoring equal with a smaller
  vocabulary index)`: ties are broken by the vocabulary order (most frequent first), neither in the target's
  favour nor against it, so integer-valued baselines are not flattered by their many ties.
* **Metrics.** Recall@k, MRR@k, NDCG@k (`models.ranking.ranking_metrics`), on all targets, on the targets whose
  item is known, and on the targets that do not repeat the user's last item (the "discovery" subset).
* **Click-outs** (trivago): the purchase targets that come with the list of items shown at that moment are
  re-ranked by each method and the clicked item's reciprocal rank is averaged (MRR, no cut-off), against the
  shown order. Impressions the model does not know have no score: "slots" keeps every unknown impression at its
  shown position and re-orders the known ones among the positions they occupy; "strict" puts the known ones
  first, by score, then the unknown ones in shown order. Ties keep the shown order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

from models.baselines import ItemKNNScorer, PopularityScorer
from models.encoder import ProfileEncoder
from models.features import OOV_INDEX, EventInput, FeatureSpace
from models.ranking import MISS, ranking_metrics
from models.training import split_by_time

DEFAULT_TEST_FRACTION = 0.2
DEFAULT_K = 20
SHOWN_ORDER = "shown order"
_CHUNK_QUERIES = 1024

Query = tuple[int, int]
"""(user b, position j): rank what comes at position j of user b's history, seeing positions 0..j-1 only."""


class Scorer(Protocol):
    """Scores all candidates (vocabulary items 1..N-1, as columns 0..N-2) for a batch of queries."""

    name: str

    def score(self, histories: Sequence[Sequence[EventInput]], queries: Sequence[Query]) -> Tensor:
        """Scores [M, C] float32; row m may use only `histories[b][:j]` of query m = (b, j)."""
        ...


@dataclass(frozen=True)
class EvalSplit:
    """Histories, the training part the baselines see, and the target positions."""

    histories: list[list[EventInput]]  # full time-ordered history per user
    train: list[list[EventInput]]  # training-part events per user
    targets: list[list[int]]  # positions in `histories` of next-item targets
    cutoff_ms: int | None = None  # time split only


def time_split(histories: Sequence[Sequence[EventInput]], test_fraction: float = DEFAULT_TEST_FRACTION) -> EvalSplit:
    """Split at the `1 - test_fraction` quantile of event times (events are sorted by time, stably)."""
    split = split_by_time(histories, test_fraction)
    return EvalSplit(split.histories, split.train, split.validation_targets, split.cutoff_ms)


def explicit_split(histories: Sequence[Sequence[EventInput]], is_test: Sequence[Sequence[bool]]) -> EvalSplit:
    """A split made elsewhere: `is_test[b][j]` marks the test events of time-ordered `histories[b]`."""
    full = [list(h) for h in histories]
    train = [[e for e, t in zip(h, flags, strict=True) if not t] for h, flags in zip(full, is_test, strict=True)]
    targets = [
        [j for j, (e, t) in enumerate(zip(h, flags, strict=True)) if t and j > 0 and e.has_item]
        for h, flags in zip(full, is_test, strict=True)
    ]
    return EvalSplit(full, train, targets)


class EncoderScorer:
    """The encoder: a query's scores are the dot products of its profile with the item vectors."""

    name = "encoder"

    def __init__(self, model: ProfileEncoder) -> None:
        self.model = model.eval()
        self.items = model.item_vectors()[1:]  # [C, D]

    def profiles(self, histories: Sequence[Sequence[EventInput]], queries: Sequence[Query]) -> Tensor:
        """Profiles [M, D]: row m is the profile after events 0..j-1 of user b, for query m = (b, j)."""
        longest: dict[int, int] = {}
        for b, j in queries:
            longest[b] = max(longest.get(b, 0), j)
        users = [b for b, n in longest.items() if n > 0]
        slot = {b: i for i, b in enumerate(users)}
        initial = self.model.initial_profile()  # [D]
        if not queries:
            return torch.zeros(0, self.model.embedding_dim)
        steps = self.model.encode_steps([histories[b][: longest[b]] for b in users])[0] if users else initial  # [U,L,D]
        return torch.stack([steps[slot[b], j - 1] if j > 0 else initial for b, j in queries])  # [M, D]

    def score(self, histories: Sequence[Sequence[EventInput]], queries: Sequence[Query]) -> Tensor:
        """[M, C] profile . item vector."""
        with torch.inference_mode():
            return self.profiles(histories, queries) @ self.items.T


def candidate_ranks(scores: Tensor, columns: Tensor) -> Tensor:
    """1-based ranks [M] of `columns` [M] in `scores` [M, C] (ties broken by the smaller column first)."""
    target = scores.gather(1, columns.unsqueeze(1))  # [M, 1]
    higher = (scores > target).sum(1)  # [M]
    tied_before = ((scores == target) & (torch.arange(scores.shape[1]).unsqueeze(0) < columns.unsqueeze(1))).sum(1)
    return higher + tied_before + 1


@dataclass(frozen=True)
class Targets:
    """The flattened targets of a split: query, candidate column (-1 = unknown item), repeat flag."""

    queries: list[Query]
    columns: np.ndarray  # [M] int64
    repeats: np.ndarray  # [M] bool: the item equals the user's previous browse/purchase item

    @classmethod
    def of(cls, split: EvalSplit, features: FeatureSpace) -> Targets:
        """Targets of `split` against the candidates of `features`."""
        queries: list[Query] = []
        columns: list[int] = []
        repeats: list[bool] = []
        for b, positions in enumerate(split.targets):
            history = split.histories[b]
            for j in positions:
                item_hash = history[j].item_hash
                queries.append((b, j))
                columns.append(features.item_index(item_hash) - 1)  # OOV_INDEX - 1 == -1
                previous = next((e.item_hash for e in reversed(history[:j]) if e.has_item), 0)
                repeats.append(previous == item_hash)
        return cls(queries, np.asarray(columns, dtype=np.int64), np.asarray(repeats, dtype=bool))

    @property
    def known(self) -> np.ndarray:
        """[M] bool: the target item is a candidate."""
        return self.columns >= 0


def rank_targets(
    scorer: Scorer, histories: Sequence[Sequence[EventInput]], targets: Targets, chunk: int = _CHUNK_QUERIES
) -> np.ndarray:
    """Ranks [M] (float, `MISS` for unknown items) of every target under `scorer`; one rule for all methods."""
    ranks = np.full(len(targets.queries), MISS, dtype=np.float64)
    known = np.flatnonzero(targets.known)
    for start in range(0, known.size, chunk):
        rows = known[start : start + chunk]
        scores = scorer.score(histories, [targets.queries[r] for r in rows])  # [m, C]
        columns = torch.from_numpy(targets.columns[rows])  # [m]
        ranks[rows] = candidate_ranks(scores, columns).numpy()
    return ranks


# -- click-outs ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ClickOut:
    """A click-out target: query (b, j), the clicked item's hash and the shown items' hashes in shown order."""

    query: Query
    clicked: int
    shown: tuple[int, ...]


def clickout_rank(scores: np.ndarray, known: np.ndarray, clicked_at: int, *, slots: bool) -> int:
    """Rank (1-based) of shown position `clicked_at` when the shown list is re-ordered by `scores`.

    `scores` [S] are the candidates' scores in shown order, `known` [S] says which have one. Ties and unknown
    items keep the shown order; see the module docstring for the "slots" and "strict" rules.
    """
    positions = np.flatnonzero(known)
    by_score = positions[np.argsort(-scores[positions], kind="stable")]  # known positions, best first
    if slots:
        order = np.arange(scores.size)
        order[positions] = by_score  # the known items take the known slots in score order
    else:
        order = np.concatenate([by_score, np.flatnonzero(~known)])
    return int(np.flatnonzero(order == clicked_at)[0]) + 1


def clickout_mrr(
    scorer: Scorer,
    histories: Sequence[Sequence[EventInput]],
    clickouts: Sequence[ClickOut],
    features: FeatureSpace,
    chunk: int = _CHUNK_QUERIES,
) -> dict[str, float]:
    """MRR of the clicked item among the shown ones, re-ranked by `scorer` ("slots" and "strict" rules)."""
    reciprocal: dict[str, list[float]] = {"slots": [], "strict": []}
    for start in range(0, len(clickouts), chunk):
        part = clickouts[start : start + chunk]
        scores = scorer.score(histories, [c.query for c in part]).numpy()  # [m, C]
        for row, c in enumerate(part):
            columns = np.asarray([features.item_index(h) - 1 for h in c.shown], dtype=np.int64)  # [S]
            known = columns >= 0
            shown_scores = np.where(known, scores[row][np.maximum(columns, 0)], 0.0)  # [S]
            clicked_at = c.shown.index(c.clicked)
            for rule, values in reciprocal.items():
                values.append(1.0 / clickout_rank(shown_scores, known, clicked_at, slots=rule == "slots"))
    return {rule: float(np.mean(values)) if values else float("nan") for rule, values in reciprocal.items()}


def shown_order_mrr(clickouts: Sequence[ClickOut]) -> float:
    """MRR of the clicked item in the order the items were shown (the click-out baseline)."""
    if not clickouts:
        return float("nan")
    return float(np.mean([1.0 / (c.shown.index(c.clicked) + 1) for c in clickouts]))


# -- the report ------------------------------------------------------------------------------------------------
@dataclass
class EvaluationReport:
    """Counts of the protocol and every method's metrics; `to_json` for files, `format_table` for people."""

    k: int
    counts: dict[str, Any]
    next_item: dict[str, dict[str, Mapping[str, float]]]  # subset -> method -> metric -> value
    clickout: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {"k": self.k, "counts": self.counts, "next_item": self.next_item, "clickout": self.clickout}

    def format_table(self) -> str:
        """Markdown tables of the report."""
        k = self.k
        c = self.counts
        lines = [
            f"targets: {c['targets']} next-item targets of {c['test_users']} users "
            f"({c['oov_targets']} = {c['oov_share']:.1%} with an item unknown to the model, "
            f"{c['repeat_targets']} = {c['repeat_share']:.1%} repeating the user's last item); "
            f"candidates: {c['candidates']} items",
            "",
        ]
        titles = {
            "all": "all targets (unknown items count as misses)",
            "known": "targets whose item the model knows",
            "non_repeat": "targets that are not a repeat of the last item (unknown items count as misses)",
        }
        for subset, methods in self.next_item.items():
            n = c[f"{subset}_targets"] if f"{subset}_targets" in c else c["targets"]
            lines += [f"next item, {titles[subset]}: {n}", ""]
            lines += [f"| method | Recall@{k} | MRR@{k} | NDCG@{k} |", "| --- | ---: | ---: | ---: |"]
            for method, m in methods.items():
                lines.append(f"| {method} | {m[f'recall@{k}']:.4f} | {m[f'mrr@{k}']:.4f} | {m[f'ndcg@{k}']:.4f} |")
            lines.append("")
        if self.clickout:
            co = self.clickout
            lines += [
                f"click-outs: {co['clickouts']} with impressions ({co['clicked_known']} with a known clicked item, "
                f"{co['clicked_not_shown']} skipped: clicked item not among the impressions)",
                "",
                "| method | MRR (slots) | MRR (strict) |",
                "| --- | ---: | ---: |",
                f"| {SHOWN_ORDER} | {co['mrr'][SHOWN_ORDER]:.4f} | {co['mrr'][SHOWN_ORDER]:.4f} |",
            ]
            for method, m in co["mrr"].items():
                if method != SHOWN_ORDER:
                    lines.append(f"| {method} | {m['slots']:.4f} | {m['strict']:.4f} |")
            lines.append("")
        return "\n".join(lines)


def baseline_scorers(features: FeatureSpace, train: Sequence[Sequence[EventInput]]) -> list[Scorer]:
    """The popularity and item-kNN baselines, fitted on `train` over the candidates of `features`."""
    return [PopularityScorer(features, train), ItemKNNScorer(features, train)]


def evaluate(
    model: ProfileEncoder,
    split: EvalSplit,
    clickouts: Sequence[ClickOut] = (),
    *,
    k: int = DEFAULT_K,
    scorers: Sequence[Scorer] | None = None,
) -> EvaluationReport:
    """Rank every target of `split` with the encoder and the baselines; click-outs likewise when given."""
    features = model.features
    methods: list[Scorer] = [EncoderScorer(model), *(scorers or baseline_scorers(features, split.train))]
    targets = Targets.of(split, features)
    known = targets.known
    non_repeat = ~targets.repeats
    subsets = {"all": np.ones_like(known), "known": known, "non_repeat": non_repeat}
    next_item: dict[str, dict[str, Mapping[str, float]]] = {name: {} for name in subsets}
    for scorer in methods:
        ranks = rank_targets(scorer, split.histories, targets)
        for subset, mask in subsets.items():
            next_item[subset][scorer.name] = ranking_metrics(ranks[mask], k)
    total = len(targets.queries)
    counts: dict[str, Any] = {
        "users": len(split.histories),
        "test_users": sum(1 for t in split.targets if t),
        "train_events": sum(len(h) for h in split.train),
        "events": sum(len(h) for h in split.histories),
        "targets": total,
        "known_targets": int(known.sum()),
        "oov_targets": int((~known).sum()),
        "oov_share": float((~known).mean()) if total else float("nan"),
        "repeat_targets": int(targets.repeats.sum()),
        "repeat_share": float(targets.repeats.mean()) if total else float("nan"),
        "non_repeat_targets": int(non_repeat.sum()),
        "candidates": features.num_items - 1,
        "cutoff_ms": split.cutoff_ms,
    }
    report = EvaluationReport(k, counts, next_item)
    if clickouts:
        usable = [c for c in clickouts if c.clicked in c.shown]
        report.clickout = {
            "clickouts": len(usable),
            "clicked_known": sum(1 for c in usable if features.item_index(c.clicked) != OOV_INDEX),
            "clicked_not_shown": len(clickouts) - len(usable),
            "mrr": {
                SHOWN_ORDER: shown_order_mrr(usable),
                **{s.name: clickout_mrr(s, split.histories, usable, features) for s in methods},
            },
        }
    return report
