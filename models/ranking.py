"""Next-item ranking with a trained encoder: the rank of each target item among all known items.

Shared by early stopping in training and by offline evaluation, so both measure the same thing. The profile that
ranks a user's event j is built from events 0..j-1 only (the initial profile for j = 0); candidates are every
known item (rows 1..num_items-1 of the item vectors); a target whose item is unknown to the model is a miss.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from models.encoder import ProfileEncoder
from models.features import OOV_INDEX, EventInput

MISS = math.inf
"""Rank of a target the model cannot rank (its item is not in the vocabulary)."""


def next_item_ranks(
    model: ProfileEncoder,
    sequences: Sequence[Sequence[EventInput]],
    targets: Sequence[Sequence[int]],
    *,
    chunk_users: int = 128,
    chunk_rows: int = 1024,
    exclude_previous: bool = False,
) -> np.ndarray:
    """1-based ranks (float, `MISS` for unknown items) of the items at positions `targets[b]` of `sequences[b]`.

    Ranks are in the order of the (user, position) pairs. Ties count in the target's favour. Positions must hold
    item-bearing events. With `exclude_previous` the item of the user's last item-bearing event before the target
    is not a candidate (the standard protocol's rule, where the next item always differs from the last one).
    """
    pairs = [(b, j) for b, positions in enumerate(targets) for j in positions]
    ranks = np.full(len(pairs), MISS, dtype=np.float64)
    if not pairs:
        return ranks
    order = sorted(range(len(sequences)), key=lambda b: len(sequences[b]))  # similar lengths pad less
    slot = {pair: i for i, pair in enumerate(pairs)}
    with torch.inference_mode():
        items = model.item_vectors()[1:]  # [N-1, D], candidates (row 0 is the unknown item)
        initial = model.initial_profile()  # [D]
        for start in range(0, len(order), chunk_users):
            users = [b for b in order[start : start + chunk_users] if targets[b]]
            if not users:
                continue
            profiles, _ = model.encode_steps([sequences[b][: max(targets[b])] for b in users])  # [B, L, D]
            rows, target_index, previous_index, slots = [], [], [], []
            for i, b in enumerate(users):
                for j in targets[b]:
                    item = model.features.item_index(sequences[b][j].item_hash)
                    if item == OOV_INDEX:
                        continue  # stays MISS
                    rows.append(profiles[i, j - 1] if j > 0 else initial)  # [D]
                    target_index.append(item - 1)
                    previous_index.append(_previous_item(model, sequences[b], j) - 1 if exclude_previous else -1)
                    slots.append(slot[(b, j)])
            for r in range(0, len(rows), chunk_rows):
                p = torch.stack(rows[r : r + chunk_rows])  # [M, D]
                t = torch.tensor(target_index[r : r + chunk_rows], dtype=torch.int64)  # [M]
                scores = p @ items.T  # [M, N-1]
                previous = torch.tensor(previous_index[r : r + chunk_rows], dtype=torch.int64)  # [M], -1: none
                has_previous = torch.nonzero(previous >= 0).squeeze(1)
                scores[has_previous, previous[has_previous]] = -math.inf
                target_scores = scores.gather(1, t.unsqueeze(1))  # [M, 1]
                rank = (scores > target_scores).sum(1) + 1  # [M]
                ranks[slots[r : r + chunk_rows]] = rank.numpy()
    return ranks


def _previous_item(model: ProfileEncoder, sequence: Sequence[EventInput], j: int) -> int:
    """Vocabulary index of the last item-bearing event before position j (OOV_INDEX if none or unknown)."""
    for event in reversed(sequence[:j]):
        if event.has_item:
            return model.features.item_index(event.item_hash)
    return OOV_INDEX


def ranking_metrics(ranks: np.ndarray, k: int = 20) -> Mapping[str, float]:
    """Recall@k, MRR@k and NDCG@k (one relevant item per target) from 1-based ranks; NaN without targets."""
    if ranks.size == 0:
        nan = float("nan")
        return {f"recall@{k}": nan, f"mrr@{k}": nan, f"ndcg@{k}": nan}
    hit = ranks <= k
    safe = np.where(hit, ranks, 1.0)  # avoid inf arithmetic on misses
    return {
        f"recall@{k}": float(hit.mean()),
        f"mrr@{k}": float(np.where(hit, 1.0 / safe, 0.0).mean()),
        f"ndcg@{k}": float(np.where(hit, 1.0 / np.log2(safe + 1.0), 0.0).mean()),
    }
