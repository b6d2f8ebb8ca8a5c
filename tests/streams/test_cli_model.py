"""CLI smoke test: import, train, evaluate (time and explicit split), export, on small generated files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from models import evaluation
from models.checkpoint import load_checkpoint
from streams.cli import model as cli_model
from streams.cli.main import main
from streams.contract.events import PurchaseEvent, encode_event
from streams.offline.demo import DemoTraffic
from streams.offline.histories import read_histories
from streams.worker.encoder_runtime import EncoderRuntime
from tests.streams.test_trivago import ROWS, csv_bytes

TINY_MODEL = ["--epochs", "2", "--dim", "8", "--hidden-dim", "8", "--no-progress"]


@pytest.fixture(scope="module")
def events_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Demo traffic in time order, with an impressions side file for its purchases."""
    folder = tmp_path_factory.mktemp("cli")
    events = list(DemoTraffic(40, seed=3).events(2500))
    path = folder / "demo.jsonl"
    path.write_bytes(b"".join(encode_event(e) + b"\n" for e in events))
    with (folder / "demo.impressions.jsonl").open("w") as side:
        for e in events:
            if isinstance(e, PurchaseEvent):
                shown = ["books-0000", e.item_id, "music-0001"] if e.item_id != "books-0000" else [e.item_id]
                side.write(json.dumps({"event_id": e.event_id, "impressions": shown, "prices": []}) + "\n")
    return path


def test_cli_defaults_match_the_protocol() -> None:
    assert cli_model.DEFAULT_TEST_FRACTION == evaluation.DEFAULT_TEST_FRACTION
    assert cli_model.DEFAULT_K == evaluation.DEFAULT_K


def test_train_evaluate_export(events_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model_dir = tmp_path / "model"
    assert main(["train", "--events", str(events_file), "--out", str(model_dir), "--seed", "1", *TINY_MODEL]) == 0
    printed = capsys.readouterr().out
    model, metadata = load_checkpoint(model_dir)
    assert f"model {metadata.model_version} written" in printed and "model size:" in printed
    assert model.config.recency_memory and metadata.extra["test_fraction"] == 0.2
    assert metadata.extra["trained_until_ms"] < metadata.extra["test_cutoff_ms"]

    report_file = tmp_path / "report.json"
    assert (
        main(["evaluate", "--events", str(events_file), "--model", str(model_dir), "--json-out", str(report_file)]) == 0
    )
    printed = capsys.readouterr().out
    assert "| encoder |" in printed and "| item-kNN |" in printed and "| shown order |" in printed
    report = json.loads(report_file.read_text())
    assert report["model_version"] == metadata.model_version
    assert report["counts"]["cutoff_ms"] == metadata.extra["test_cutoff_ms"]
    assert set(report["next_item"]["all"]) == {"encoder", "popularity", "item-kNN"}
    assert report["clickout"]["clickouts"] > 0

    # The worker's runtime loads the same checkpoint; folding a user's events in two calls, as micro-batches
    # would, gives the offline profile of the same file's events.
    runtime = EncoderRuntime.load(model_dir)
    assert runtime.model_version == metadata.model_version
    histories, _ = read_histories(events_file)
    users = histories.inputs[:6]
    hidden, _ = runtime.fold([None] * len(users), [h[:3] for h in users], [None] * len(users))
    _, profiles = runtime.fold(hidden, [h[3:] for h in users], [h[2].ts_ms for h in users])
    offline = model.encode_batch(users).numpy()
    assert np.abs(profiles - offline).max() <= 1e-5

    vectors = tmp_path / "items.jsonl"
    assert main(["model", "export-items", "--model", str(model_dir), "--out", str(vectors)]) == 0
    lines = vectors.read_text().splitlines()
    assert json.loads(lines[0])["model_version"] == metadata.model_version
    assert len(lines) == model.features.num_items  # header + every known item


def test_explicit_split_and_leak_check(events_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = events_file.read_bytes().splitlines(keepends=True)
    train, test = tmp_path / "train.jsonl", tmp_path / "test.jsonl"
    train.write_bytes(b"".join(lines[: len(lines) * 9 // 10]))
    test.write_bytes(b"".join(lines[len(lines) * 9 // 10 :]))
    model_dir = tmp_path / "model"
    args = ["train", "--events", str(train), "--out", str(model_dir), "--test-fraction", "0", *TINY_MODEL]
    assert main(args) == 0
    capsys.readouterr()
    assert main(["evaluate", "--train", str(train), "--test", str(test), "--model", str(model_dir)]) == 0
    captured = capsys.readouterr()
    assert "trained on exactly the --train events: yes" in captured.err
    assert "| encoder |" in captured.out
    # The same model on a time split of the whole file has seen test events: refused.
    assert main(["evaluate", "--events", str(events_file), "--model", str(model_dir)]) == 1
    assert "inflated" in capsys.readouterr().err
    assert main(["evaluate", "--train", str(train), "--model", str(model_dir)]) == 2


def test_import_trivago(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "rows.csv"
    source.write_bytes(csv_bytes(ROWS))
    out = tmp_path / "var" / "trivago.jsonl"
    assert main(["data", "import", "trivago", "--source", str(source), "--out", str(out)]) == 0
    assert "wrote 7 events" in capsys.readouterr().out
    assert len(out.read_text().splitlines()) == 7
    assert (tmp_path / "var" / "trivago.impressions.jsonl").is_file()
