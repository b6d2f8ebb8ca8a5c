"""bench.seed_agreement: pairwise disagreement of seeds and the chance that flips net to one prediction."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from bench.seed_agreement import chance_within_one, hits_at, main, pairwise
from models.checkpoint import load_checkpoint, save_checkpoint
from models.encoder import EncoderConfig
from models.sessionrec import prepare
from models.training import TrainConfig, train
from streams.offline.standard import read_standard_input


def test_pairwise_counts_the_predictions_only_one_model_hits() -> None:
    hits = {
        "a": np.array([True, True, False, False, True]),
        "b": np.array([True, False, True, False, False]),
        "c": np.array([True, True, False, False, True]),
    }
    ab, ac, bc = pairwise(hits)
    assert (ab.first, ab.second, ab.disagree, ab.first_only, ab.second_only, ab.net) == ("a", "b", 3, 2, 1, 1)
    assert ac.disagree == 0 and ac.net == 0
    assert (bc.first_only, bc.second_only, bc.net) == (1, 2, -1)


def test_chance_within_one() -> None:
    assert chance_within_one(0) == 1.0 and chance_within_one(1) == 1.0
    assert chance_within_one(2) == 0.5  # only a 1-1 split nets to 0; 2-0 either way nets to 2
    assert chance_within_one(3) == 0.75
    assert chance_within_one(12) == pytest.approx(math.comb(12, 6) / 2**12)
    assert chance_within_one(11) == pytest.approx(2 * math.comb(11, 5) / 2**11)


def test_main_scores_checkpoints_of_two_seeds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    train_rows = [f"s{s}\ti{(s + t) % 7}\t{1000 * s + t}" for s in range(40) for t in range(5)]
    test_rows = [f"t{s}\ti{(s + t) % 7}\t{900_000 + 10 * s + t}" for s in range(6) for t in range(4)]
    (tmp_path / "train.tsv").write_text("SessionId\tItemId\tTime\n" + "\n".join(train_rows) + "\n")
    (tmp_path / "test.tsv").write_text("SessionId\tItemId\tTime\n" + "\n".join(test_rows) + "\n")
    read = read_standard_input(tmp_path / "train.tsv", tmp_path / "test.tsv")
    histories = [h for h, test in zip(read.histories, read.is_test, strict=True) if not any(test)]
    models = []
    for seed in (0, 1):
        config = TrainConfig(seed=seed, epochs=2, batch_size=8, negatives=4, max_seq_len=6, num_threads=1)
        model, metrics = train(histories, config, EncoderConfig(embedding_dim=8, hidden_dim=8), progress=False)
        save_checkpoint(model, tmp_path / f"d{seed}", training_fingerprint="f" * 64, metrics=metrics)
        models += ["--model", str(tmp_path / f"d{seed}")]
    files = ["--train", str(tmp_path / "train.tsv"), "--test", str(tmp_path / "test.tsv")]
    assert main([*files, *models, "--k", "2"]) == 0  # top 2 of 7 items: not every target is a hit
    printed = capsys.readouterr().out
    assert "n = 18 predictions" in printed  # 6 test sessions of 4 items: 3 predictions each
    data = prepare(read.histories, read.keys, read.is_test)
    hits = {}
    for seed in (0, 1):
        model, metadata = load_checkpoint(tmp_path / f"d{seed}")
        hits[f"d{seed} ({metadata.model_version[:8]})"] = hits_at(model, data, 2)
        assert f"| d{seed} ({metadata.model_version[:8]}) | {int(hits_at(model, data, 2).sum())} |" in printed
    (pair,) = pairwise(hits)
    assert f"| {pair.first} / {pair.second} | {pair.disagree} |" in printed
