"""Tune the encoder on training data only: train a variant, score it under the standard protocol on a validation file.

The validation file must be cut from the training data (`profilestream data split --events TRAIN.jsonl --out-dir
DIR --test-fraction 0.15`), never the test file: docs/evaluation.md gives the tables this fed. Each run trains one
variant, `--set name=value` overriding `TrainConfig` or `EncoderConfig` fields on top of `profilestream train`'s
defaults, and appends one JSON line (variant, seed, metrics, item-kNN's on the same split, training summary) to
`--out`.

    python -m bench.tune_encoder --train var/ycv/train.jsonl --val var/ycv/test.jsonl --out var/tune/yc.jsonl \
        --set negatives=4096 --seed 0
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch

from models.encoder import EncoderConfig
from models.sessionrec import SessionEncoder, baseline_scorers, evaluate_standard, prepare
from models.training import TrainConfig, train
from streams.offline.histories import read_histories
from streams.offline.standard import read_standard_input

# `profilestream train`'s defaults (streams/cli/model.py), the starting point of every variant. Its training
# options are TrainConfig's defaults (the whole schedule, nothing held out); `--early-stopping` would add
# validation_fraction=0.1 and refit=true.
CLI_TRAIN: dict[str, Any] = {}
CLI_ENCODER = {"hidden_dim": 32, "recency_memory": True, "item_category_vectors": True}


def _parse_value(text: str) -> Any:
    """JSON where it parses (numbers, true/false), the raw text otherwise."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def configs(overrides: dict[str, Any], seed: int) -> tuple[TrainConfig, EncoderConfig]:
    """The CLI's defaults with `overrides` applied to whichever config owns each name."""
    train_names = {f.name for f in fields(TrainConfig)}
    encoder_names = {f.name for f in fields(EncoderConfig)}
    unknown = set(overrides) - train_names - encoder_names
    if unknown:
        raise SystemExit(f"unknown option(s) {sorted(unknown)}")
    train_kw = {**CLI_TRAIN, "seed": seed, **{k: v for k, v in overrides.items() if k in train_names}}
    encoder_kw = {**CLI_ENCODER, **{k: v for k, v in overrides.items() if k in encoder_names}}
    return TrainConfig(**train_kw), EncoderConfig(**encoder_kw)


def main(argv: list[str] | None = None) -> int:
    """Train one variant and append its validation scores to `--out`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", required=True, help="training part (contract-v1 JSON lines)")
    parser.add_argument("--val", required=True, help="validation part cut from the training data, never the test file")
    parser.add_argument("--out", required=True, help="JSON-lines file to append the result to")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="override a config field")
    parser.add_argument("--name", help="label of the variant (default: the overrides)")
    args = parser.parse_args(argv)
    overrides = dict(item.split("=", 1) for item in args.set)
    overrides = {k: _parse_value(v) for k, v in overrides.items()}
    train_config, encoder_config = configs(overrides, args.seed)
    name = args.name or (",".join(args.set) or "defaults")

    histories, _ = read_histories(Path(args.train))
    started = time.monotonic()
    model, metrics = train(
        [h for h in histories.inputs if h], train_config, encoder_config, progress=False, item_ids=histories.item_ids()
    )
    train_s = time.monotonic() - started
    torch.set_num_threads(train_config.num_threads)
    read = read_standard_input(Path(args.train), Path(args.val))
    data = prepare(read.histories, read.keys, read.is_test)
    report = evaluate_standard(data, [SessionEncoder(model, data), *baseline_scorers(data)])
    print(f"{name} seed {args.seed}: best epoch {metrics['best_epoch']} of {metrics['epochs_run']}, {train_s:.0f} s")
    print(report.format_table())
    row = {
        "variant": name,
        "overrides": overrides,
        "train_config": train_config.to_dict(),
        "encoder_config": encoder_config.to_dict(),
        "seed": args.seed,
        "best_epoch": metrics["best_epoch"],
        "epochs_run": metrics["epochs_run"],
        "val_history": {k: v for k, v in metrics.items() if k.startswith("val_") or k.endswith("train_loss")},
        "train_seconds": round(train_s, 1),
        **report.to_json(),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
