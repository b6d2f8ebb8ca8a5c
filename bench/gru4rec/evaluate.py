"""Evaluate a saved GRU4Rec model with the official evaluation code, for test files of fewer than 512 sessions.

The official `run.py` evaluates with a fixed batch of 512 sessions and fails (IndexError in its session iterator)
when the test file has fewer, as trivago's standard split does (56 sessions). This driver calls the same
`evaluation.batch_eval` of the checkout, with the same tie mode as `run.py`'s default, and a batch no larger than
the number of test sessions; it prints the lines `run.py` prints, which `bench.gru4rec.summary` parses.
Run it with the scratch interpreter of bench/gru4rec/run.sh (it needs the checkout's code, torch and pandas).

Usage: python bench/gru4rec/evaluate.py CHECKOUT MODEL TEST.tsv [K ...]
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    """Load the model saved by `run.py -s`, rank every next item of TEST, print Recall@k and MRR@k."""
    checkout, model_path, test_path, *cutoffs = argv
    sys.path.insert(0, checkout)
    import evaluation  # type: ignore[import-not-found]
    import pandas as pd  # type: ignore[import-untyped,import-not-found,unused-ignore]
    from gru4rec_pytorch import GRU4Rec  # type: ignore[import-not-found]

    ks = [int(k) for k in cutoffs] or [20]
    gru = GRU4Rec.loadmodel(model_path, device="cpu")
    test = pd.read_csv(test_path, sep="\t", dtype={"SessionId": "int32", "ItemId": "str"})
    sessions = int(test["SessionId"].nunique())
    batch = min(512, sessions)
    recall, mrr = evaluation.batch_eval(gru, test, batch_size=batch, cutoff=ks, mode="standard")
    print(f"evaluated {len(test)} rows of {sessions} sessions in batches of {batch}")
    for k in ks:
        print(f"Recall@{k}: {recall[k]:.6f} MRR@{k}: {mrr[k]:.6f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
