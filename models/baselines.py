"""Baseline scorers for offline evaluation: item popularity and item-kNN on session co-occurrence of the last item.

Both score the same candidates as the encoder (the known items of a `FeatureSpace`, column c = item index c + 1)
and are fitted on the training part of a split only. They implement `models.evaluation.Scorer`, so the table
ranks them with the very code that ranks the encoder.

Item-kNN: a user's events are cut into sessions at gaps longer than `session_gap_ms` (the contract's
`session_id` is optional, so sessions are derived from time). Each session is a set of distinct items. The
similarity of items i != j is their session-incidence cosine with shrinkage,
`co(i, j) / (sqrt(n_i * n_j) + shrink)` (`n_i`: sessions with i, `co`: sessions with both; the shrinkage, 20 as
in the item-kNN of Ludewig and Jannach's session-based evaluations, keeps pairs seen once from outranking
well-supported ones). A query scores every candidate by its similarity to the user's last item (the item of
the latest browse/purchase before the target), and the last item itself gets the top score (`SELF_SCORE`):
repeating it is part of this baseline, as the data makes it the single strongest signal. Without a last item,
or when it never occurred in a training session, every score is 0 and the shared tie-break (the vocabulary
order, most frequent first) makes it a popularity ranking.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from itertools import combinations

import numpy as np
import torch
from torch import Tensor

from models.features import OOV_INDEX, EventInput, FeatureSpace

DEFAULT_SESSION_GAP_MS = 30 * 60 * 1000
DEFAULT_SHRINK = 20.0
SELF_SCORE = 2.0
"""Score of the last item itself: above every similarity to another item (those are below 1)."""


def item_counts(features: FeatureSpace, histories: Sequence[Sequence[EventInput]]) -> np.ndarray:
    """Count of item-bearing events per candidate column [C] (items unknown to `features` are ignored)."""
    counts = np.zeros(features.num_items, dtype=np.float64)  # [N], index 0 collects unknown items
    for history in histories:
        for event in history:
            if event.has_item:
                counts[features.item_index(event.item_hash)] += 1.0
    return counts[1:]


def last_item_index(history: Sequence[EventInput], features: FeatureSpace) -> int:
    """Item index of the latest item-bearing event of `history` (OOV_INDEX when none or unknown)."""
    for event in reversed(history):
        if event.has_item:
            return features.item_index(event.item_hash)
    return OOV_INDEX


def sessions(history: Sequence[EventInput], gap_ms: int) -> list[list[EventInput]]:
    """A time-ordered history cut at gaps longer than `gap_ms`."""
    out: list[list[EventInput]] = []
    previous: int | None = None
    for event in history:
        if previous is None or event.ts_ms - previous > gap_ms:
            out.append([])
        out[-1].append(event)
        previous = event.ts_ms
    return out


class PopularityScorer:
    """Scores every candidate by its count of item-bearing events in the training part; the same for all users."""

    name = "popularity"

    def __init__(self, features: FeatureSpace, train: Sequence[Sequence[EventInput]]) -> None:
        self.features = features
        self.scores_c = torch.from_numpy(item_counts(features, train).astype(np.float32))  # [C]

    def score(self, histories: Sequence[Sequence[EventInput]], queries: Sequence[tuple[int, int]]) -> Tensor:
        """[M, C] scores of the queries (user b before position j): one popularity row each."""
        return self.scores_c.unsqueeze(0).expand(len(queries), -1)


class ItemKNNScorer:
    """Scores candidates by their session co-occurrence cosine with the user's last item (see module docstring)."""

    name = "item-kNN"

    def __init__(
        self,
        features: FeatureSpace,
        train: Sequence[Sequence[EventInput]],
        session_gap_ms: int = DEFAULT_SESSION_GAP_MS,
        shrink: float = DEFAULT_SHRINK,
    ) -> None:
        self.features = features
        self.session_gap_ms = session_gap_ms
        n_sessions: Counter[int] = Counter()
        co: Counter[tuple[int, int]] = Counter()
        for history in train:
            for session in sessions(sorted(history, key=lambda e: e.ts_ms), session_gap_ms):
                items = sorted({features.item_index(e.item_hash) for e in session if e.has_item} - {OOV_INDEX})
                n_sessions.update(items)
                co.update(combinations(items, 2))  # i < j
        neighbours: dict[int, dict[int, float]] = {i: {i: SELF_SCORE} for i in n_sessions}
        for (i, j), both in co.items():
            sim = both / (math.sqrt(n_sessions[i] * n_sessions[j]) + shrink)
            neighbours[i][j] = sim
            neighbours[j][i] = sim
        # Per item: candidate columns and similarities, as arrays for a fast scatter.
        self.rows: dict[int, tuple[Tensor, Tensor]] = {
            i: (
                torch.tensor([j - 1 for j in sims], dtype=torch.int64),
                torch.tensor(list(sims.values()), dtype=torch.float32),
            )
            for i, sims in neighbours.items()
        }
        self.num_candidates = features.num_items - 1

    def score(self, histories: Sequence[Sequence[EventInput]], queries: Sequence[tuple[int, int]]) -> Tensor:
        """[M, C] similarity of every candidate to the last item before each query position."""
        out = torch.zeros(len(queries), self.num_candidates, dtype=torch.float32)  # [M, C]
        for row, (b, j) in enumerate(queries):
            found = self.rows.get(last_item_index(histories[b][:j], self.features))
            if found is not None:
                out[row].index_copy_(0, found[0], found[1])
        return out
