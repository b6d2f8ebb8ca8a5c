"""How far apart models trained with different seeds are, prediction by prediction, under the standard protocol.

A seed spread of Recall@20 is a difference of hit counts. Two models that disagree on ``d`` of the ``n``
predictions (one finds the target in its top 20, the other does not) differ by the net of those ``d`` flips, so
the spread a test set can show depends on ``d``, not on ``n``: on a small set a spread of one prediction asks for
almost no disagreement at all. This prints, for checkpoints of one training command with different seeds, each
model's hits and, for each pair, the predictions they disagree on and the chance that that many flips, each
equally likely to go either way, net to at most one prediction (docs/evaluation.md, "Seed spread").

    python -m bench.seed_agreement --train var/tv/train.jsonl --test var/tv/test.jsonl \\
        --model var/tv/d0 --model var/tv/d1 --model var/tv/d2
"""

from __future__ import annotations

import argparse
import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from models.checkpoint import load_checkpoint
from models.encoder import ProfileEncoder
from models.sessionrec import SessionEncoder, StandardData, prepare, queries_of, rank_all
from streams.offline.standard import read_standard_input


@dataclass(frozen=True)
class PairAgreement:
    """Two models' hits compared prediction by prediction."""

    first: str
    second: str
    disagree: int
    first_only: int
    second_only: int

    @property
    def net(self) -> int:
        """The difference of their hit counts (first minus second)."""
        return self.first_only - self.second_only


def hits_at(model: ProfileEncoder, data: StandardData, k: int = 20) -> np.ndarray:
    """Whether each prediction's target is in the model's top ``k`` (bool [M], in `queries_of` order)."""
    return rank_all(SessionEncoder(model, data), data, queries_of(data)) <= k


def pairwise(hits: Mapping[str, np.ndarray]) -> list[PairAgreement]:
    """Every pair of models: the predictions only one of them hits, each way."""
    pairs = []
    for a, b in itertools.combinations(hits, 2):
        only_a = int((hits[a] & ~hits[b]).sum())
        only_b = int((hits[b] & ~hits[a]).sum())
        pairs.append(PairAgreement(a, b, only_a + only_b, only_a, only_b))
    return pairs


def chance_within_one(flips: int) -> float:
    """P(|net| <= 1) when each of ``flips`` disagreements favours either model with probability one half."""
    # net = 2 * (flips won by the first) - flips; |net| <= 1 holds for the one or two middle counts.
    middle = [w for w in range(flips + 1) if abs(2 * w - flips) <= 1]
    return sum(math.comb(flips, w) for w in middle) / (1 << flips)


def format_report(hits: Mapping[str, np.ndarray], k: int = 20) -> str:
    """Markdown tables: hits per model, then agreement per pair."""
    n = len(next(iter(hits.values())))
    lines = [f"n = {n} predictions", "", f"| model | hits@{k} | Recall@{k} |", "| --- | ---: | ---: |"]
    lines += [f"| {name} | {int(h.sum())} | {h.mean():.4f} |" for name, h in hits.items()]
    lines += [
        "",
        "| pair | disagree | share of n | first only | second only | net | chance the flips net to <= 1 |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for p in pairwise(hits):
        lines.append(
            f"| {p.first} / {p.second} | {p.disagree} | {p.disagree / n:.3f} | {p.first_only} | {p.second_only} "
            f"| {p.net:+d} | {chance_within_one(p.disagree):.2f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Score each checkpoint on the test file and print the agreement tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", required=True, type=Path, help="training file (contract-v1 JSON lines or TSV)")
    parser.add_argument("--test", required=True, type=Path, help="test file of the same kind")
    parser.add_argument("--model", action="append", required=True, type=Path, help="checkpoint directory (2 or more)")
    parser.add_argument("--k", type=int, default=20, help="cut-off of the list [default 20]")
    args = parser.parse_args(argv)
    if len(args.model) < 2:
        parser.error("give at least two --model")
    torch.set_num_threads(1)
    read = read_standard_input(args.train, args.test)
    data = prepare(read.histories, read.keys, read.is_test)
    hits = {}
    for path in args.model:
        model, metadata = load_checkpoint(path)
        hits[f"{path.name} ({metadata.model_version[:8]})"] = hits_at(model, data, args.k)
    print(format_report(hits, args.k), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
