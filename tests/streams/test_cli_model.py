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
    argv = ["train", "--events", str(events_file), "--out", str(model_dir), "--seed", "1", "--test-fraction", "0.2"]
    assert main([*argv, *TINY_MODEL]) == 0
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


def test_train_defaults_to_every_event(events_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model_dir = tmp_path / "all"
    assert main(["train", "--events", str(events_file), "--out", str(model_dir), *TINY_MODEL]) == 0
    printed = capsys.readouterr().out
    _, metadata = load_checkpoint(model_dir)
    assert metadata.extra["test_fraction"] == 0.0 and metadata.extra["test_cutoff_ms"] is None
    assert f"every event of {events_file.name}" in printed and "schedule: 2 epochs on all of them" in printed
    assert metadata.metrics["validation_cutoff_ms"] is None and metadata.metrics["refit"] is False
    # Two epochs: the mean would take the first half of the schedule, so the model is the last epoch's.
    assert metadata.metrics["averaged_epochs"] == 1 and "mean of the weights" not in printed


def test_train_with_early_stopping_holds_a_slice_out_then_refits(
    events_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from models.training import data_fingerprint

    model_dir = tmp_path / "stopped"
    assert main(["train", "--events", str(events_file), "--out", str(model_dir), "--early-stopping", *TINY_MODEL]) == 0
    printed = capsys.readouterr().out
    _, metadata = load_checkpoint(model_dir)
    assert "early stopping on the latest 10% of them" in printed and "refit on all of them" in printed
    assert metadata.metrics["validation_cutoff_ms"] is not None and metadata.metrics["refit"] is True
    # The refit model was fitted on every event: the checkpoint names them all.
    histories, report = read_histories(events_file)
    assert f"trained on {report.events} events" in printed and f"every event of {events_file.name}" in printed
    assert metadata.metrics["fitted_before_ms"] is None and metadata.extra["validated_until_ms"] is None
    assert metadata.training_fingerprint == data_fingerprint([h for h in histories.inputs if h])


def test_no_refit_without_early_stopping_is_refused(events_file: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="--no-refit needs --early-stopping"):
        main(["train", "--events", str(events_file), "--out", str(tmp_path / "m"), "--no-refit", *TINY_MODEL])


def _with_sessions(events_file: Path, out: Path) -> Path:
    """Demo traffic has no session_id and no 30-minute gaps: give every user's 8 events a session."""
    seen: dict[str, int] = {}
    lines = []
    for line in events_file.read_text().splitlines():
        event = json.loads(line)
        n = seen[event["user_id"]] = seen.get(event["user_id"], -1) + 1
        lines.append(json.dumps({**event, "session_id": f"{event['user_id']}-{n // 8}"}))
    out.write_text("\n".join(lines) + "\n")
    return out


def test_standard_protocol_on_split_and_imported_files(
    events_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sessions_file, split_dir = _with_sessions(events_file, tmp_path / "sessions.jsonl"), tmp_path / "split"
    assert main(["data", "split", "--events", str(sessions_file), "--out-dir", str(split_dir)]) == 0
    model_dir = tmp_path / "m"
    assert main(["train", "--events", str(split_dir / "train.jsonl"), "--out", str(model_dir), *TINY_MODEL]) == 0
    capsys.readouterr()
    report_file, tsv_dir = tmp_path / "standard.json", tmp_path / "tsv"
    argv = ["evaluate", "--protocol", "standard", "--train", str(split_dir / "train.jsonl"), "--model", str(model_dir)]
    argv += ["--test", str(split_dir / "test.jsonl"), "--json-out", str(report_file), "--export-tsv", str(tsv_dir)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "| encoder |" in printed and "| most-popular |" in printed and "| encoder - item-kNN |" in printed
    report = json.loads(report_file.read_text())
    assert report["counts"]["predictions"] > 0 and "mrr@20" in report["metrics"]["encoder"]
    # The exported sessions in GRU4Rec format give the baselines the same numbers.
    tsv = ["evaluate", "--protocol", "standard", "--train", str(tsv_dir / "train.tsv"), "--test"]
    assert main([*tsv, str(tsv_dir / "test.tsv"), "--json-out", str(tmp_path / "tsv.json")]) == 0
    again = json.loads((tmp_path / "tsv.json").read_text())
    assert again["metrics"]["item-kNN"] == report["metrics"]["item-kNN"]
    assert again["counts"]["predictions"] == report["counts"]["predictions"]


def test_import_yoochoose(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "src"
    source.mkdir()
    header = "SessionId\tItemId\tTime\n"
    (source / "yoochoose-clicks-100k_train_full.txt").write_text(header + "1\t10\t1396310000.5\n1\t11\t1396310000.5\n")
    (source / "yoochoose-clicks-100k_test.txt").write_text(header + "2\t10\t1396400000.0\n")
    assert main(["data", "import", "yoochoose", "--source", str(source), "--out-dir", str(tmp_path / "out")]) == 0
    lines = [json.loads(x) for x in (tmp_path / "out" / "train.jsonl").read_text().splitlines()]
    assert [(e["user_id"], e["item_id"], e["ts"]) for e in lines] == [
        ("yc1", "10", 1396310000500),
        ("yc1", "11", 1396310000501),
    ]
    assert "train 2 browse events, test 1 browse events" in capsys.readouterr().out


def test_the_default_data_folders_are_looked_for_beside_the_checkout() -> None:
    from streams.cli import model as cli_model
    from streams.offline import trivago, yoochoose

    assert (cli_model.REPO_ROOT / "pyproject.toml").is_file()
    assert yoochoose.default_source(cli_model.REPO_ROOT) == cli_model.REPO_ROOT.parent / "shared" / "data" / (
        yoochoose.DATASET_DIR
    )
    assert trivago.default_source(cli_model.REPO_ROOT).parent == cli_model.REPO_ROOT.parent / "shared" / "data"


def test_train_help_states_the_schedule_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    from models.training import TrainConfig

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    printed = " ".join(capsys.readouterr().out.split())  # argparse wraps the help text
    assert f"falls by {TrainConfig.lr_decay:g} after each" in printed
    assert f"mean of the last {TrainConfig.average_epochs} epochs' weights, at most the second half's" in printed


def test_train_without_refit_reports_and_records_only_what_it_fitted(
    events_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from models.training import data_fingerprint

    model_dir = tmp_path / "no-refit"
    argv = ["train", "--events", str(events_file), "--out", str(model_dir), "--early-stopping", "--no-refit"]
    assert main([*argv, *TINY_MODEL]) == 0
    printed = capsys.readouterr().out
    _, metadata = load_checkpoint(model_dir)
    cutoff = metadata.metrics["validation_cutoff_ms"]
    assert cutoff is not None and metadata.metrics["fitted_before_ms"] == cutoff
    histories, _ = read_histories(events_file)
    fitted = [[e for e in h if e.ts_ms < cutoff] for h in histories.inputs]
    fitted = [h for h in fitted if h]
    events = sum(map(len, fitted))
    assert 0 < events < sum(map(len, histories.inputs))
    assert f"trained on {events} events of {len(fitted)} users" in printed
    assert "early stopping's validation slice, not trained on" in printed
    assert metadata.training_fingerprint == data_fingerprint(fitted)
    assert metadata.extra["trained_until_ms"] == max(e.ts_ms for h in fitted for e in h) < cutoff
    assert metadata.extra["validated_until_ms"] == max(e.ts_ms for h in histories.inputs for e in h)

    # On an explicit split with this file as --train, evaluate says what the model was fitted on (before it
    # stops at the empty test file: nothing to evaluate).
    test = tmp_path / "test.jsonl"
    test.write_text("")
    assert main(["evaluate", "--train", str(events_file), "--test", str(test), "--model", str(model_dir)]) == 2
    assert "trained on exactly the --train events before its early-stopping cutoff" in capsys.readouterr().err
    # A time split whose test part overlaps the validation slice, which chose the epoch: refused.
    assert main(["evaluate", "--events", str(events_file), "--model", str(model_dir), "--test-fraction", "0.05"]) == 1
    assert "early stopping chose its epoch on events up to" in capsys.readouterr().err


def test_train_refuses_an_unusable_out_before_reading_the_events(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import streams.offline.histories

    def never(path: Path) -> None:
        raise AssertionError("the events were read")

    monkeypatch.setattr(streams.offline.histories, "read_histories", never)
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    plain = tmp_path / "file"
    plain.write_text("mine")
    for out in (folder, plain):
        assert main(["train", "--events", str(tmp_path / "missing.jsonl"), "--out", str(out), *TINY_MODEL]) == 2
        assert f"refusing to overwrite {out}" in capsys.readouterr().err
    assert (folder / "notes.txt").read_text() == "mine" and plain.read_text() == "mine"


def test_json_report_has_null_for_a_subset_without_targets(
    events_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model_dir = tmp_path / "m"
    assert main(["train", "--events", str(events_file), "--out", str(model_dir), *TINY_MODEL]) == 0
    last = max(json.loads(line)["ts"] for line in events_file.read_text().splitlines())
    user = json.loads(events_file.read_text().splitlines()[0])["user_id"]
    test = tmp_path / "test.jsonl"
    new_items = [  # items the model never saw: the "known" subset has no targets
        {"schema": 1, "event_id": f"t{i}", "user_id": user, "type": "browse", "ts": last + 1000 * (i + 1),
         "item_id": f"never-seen-{i}"}
        for i in range(3)
    ]  # fmt: skip
    test.write_text("".join(json.dumps(e) + "\n" for e in new_items))
    report_file = tmp_path / "report.json"
    argv = ["evaluate", "--train", str(events_file), "--test", str(test), "--model", str(model_dir)]
    assert main([*argv, "--json-out", str(report_file)]) == 0
    assert "| encoder | nan |" in capsys.readouterr().out
    report = json.loads(report_file.read_text())
    assert report["counts"]["known_targets"] == 0
    assert report["next_item"]["known"]["encoder"] == {"recall@20": None, "mrr@20": None, "ndcg@20": None}
    assert report["next_item"]["all"]["encoder"]["recall@20"] == 0.0


def test_standard_protocol_checks_what_each_model_was_trained_on(
    events_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    whole = _with_sessions(events_file, tmp_path / "whole.jsonl")
    split_dir = tmp_path / "split"
    assert main(["data", "split", "--events", str(whole), "--out-dir", str(split_dir)]) == 0
    leaked, other = tmp_path / "leaked", tmp_path / "other"
    assert main(["train", "--events", str(whole), "--out", str(leaked), *TINY_MODEL]) == 0
    assert main(["train", "--events", str(split_dir / "test.jsonl"), "--out", str(other), *TINY_MODEL]) == 0
    capsys.readouterr()
    files = ["--train", str(split_dir / "train.jsonl"), "--test", str(split_dir / "test.jsonl")]
    # Trained on the training and test files together: refused, before any evaluation.
    assert main(["evaluate", "--protocol", "standard", *files, "--model", str(leaked)]) == 1
    captured = capsys.readouterr()
    assert "was trained on the --train and --test events together" in captured.err and captured.out == ""
    # Trained on something else: evaluated, with a warning.
    assert main(["evaluate", "--protocol", "standard", *files, "--model", str(other)]) == 0
    assert "no (fingerprint differs). Warning" in capsys.readouterr().err
    # The explicit split of the stream protocol refuses the leaked model too.
    assert main(["evaluate", *files, "--model", str(leaked)]) == 1


def test_import_yoochoose_skips_what_the_contract_refuses_and_names_the_rows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "src"
    source.mkdir()
    header = "SessionId\tItemId\tTime\n"
    rows = ["1\t10\t1396310000.5", "1\t\t1396310001.0", "2\t11\t-5", "3\t12\t0.099", "\t13\t1396310002.0"]
    (source / "yoochoose-clicks-100k_train_full.txt").write_text(header + "\n".join(rows) + "\n")
    (source / "yoochoose-clicks-100k_test.txt").write_text(header + "4\t10\t1396400000.0\n")
    out = tmp_path / "out"
    assert main(["data", "import", "yoochoose", "--source", str(source), "--out-dir", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "wrote train 1 browse events, test 1 browse events; skipped: invalid_value 2, ts_out_of_range 2" in printed
    assert "train row 2: invalid_value (field 'item_id' must not be empty)" in printed
    assert "train row 3: ts_out_of_range" in printed and "train row 4: ts_out_of_range" in printed
    assert "train row 5: invalid_value (field 'session_id' must not be empty)" in printed
    assert len((out / "train.jsonl").read_text().splitlines()) == 1


@pytest.mark.parametrize("time_text", ["inf", "nan", "-inf", "noon"])
def test_import_yoochoose_stops_at_a_time_that_is_not_a_finite_number(
    time_text: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "src"
    source.mkdir()
    header = "SessionId\tItemId\tTime\n"
    (source / "yoochoose-clicks-100k_train_full.txt").write_text(header + f"1\t10\t1396310000.5\n1\t11\t{time_text}\n")
    (source / "yoochoose-clicks-100k_test.txt").write_text(header + "2\t10\t1396400000.0\n")
    assert main(["data", "import", "yoochoose", "--source", str(source), "--out-dir", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("profilestream: ") and "\n" not in err
    assert err.endswith(("row 2: Time is not a finite number", "row 2: Time is not a number"))  # never the value


def test_model_publish_connects_with_the_clusters_security_settings(
    events_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # It passed the bootstrap address alone: on a secured cluster it connected in the clear and failed, and the
    # recommender never got the item vectors.
    import streams.client.items
    from tests.streams.fake_kafka import RecordingKafkaProducer

    assert main(["train", "--events", str(events_file), "--out", str(tmp_path / "m"), *TINY_MODEL]) == 0
    made: list[RecordingKafkaProducer] = []
    monkeypatch.setattr(RecordingKafkaProducer, "made", made)
    monkeypatch.setattr(streams.client.items, "KafkaProducer", RecordingKafkaProducer)
    password = tmp_path / "password"
    password.write_text("not-quoted-anywhere")
    flags = ["--kafka-security-protocol", "SASL_PLAINTEXT", "--kafka-sasl-username", "publisher"]
    flags += ["--kafka-sasl-password-file", str(password)]
    assert main(["model", "publish", "--model", str(tmp_path / "m"), *flags]) == 0
    [producer] = made
    assert producer.config["security_protocol"] == "SASL_PLAINTEXT"
    assert producer.config["sasl_plain_username"] == "publisher"
    assert producer.config["sasl_plain_password"] == "not-quoted-anywhere"
    assert producer.sent, "the item vectors and the manifest"


def test_model_publish_of_a_checkpoint_it_cannot_load_exits_2_like_the_other_model_commands(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # It exited 3 (the worker's code for a model it cannot load) where evaluate exits 2 for the same checkpoint.
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "metadata.json").write_text("{not json")
    assert main(["model", "publish", "--model", str(broken), "--kafka-bootstrap", "127.0.0.1:1"]) == 2
    err = capsys.readouterr().err
    assert "profilestream model publish: cannot load the model" in err


def test_files_that_are_not_utf8_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Each ended in a UnicodeDecodeError traceback (exit 1): a yoochoose row, a GRU4Rec-format file, a trivago header.
    source = tmp_path / "src"
    source.mkdir()
    header = b"SessionId\tItemId\tTime\n"
    (source / "yoochoose-clicks-100k_train_full.txt").write_bytes(header + b"1\t10\t1396310000.5\n1\tcaf\xe9\t1.0\n")
    (source / "yoochoose-clicks-100k_test.txt").write_bytes(header + b"2\t10\t1396400000.0\n")
    assert main(["data", "import", "yoochoose", "--source", str(source), "--out-dir", str(tmp_path / "out")]) == 2
    (tmp_path / "train.tsv").write_bytes(header + b"1\t\xff\t1.0\n")
    (tmp_path / "test.tsv").write_bytes(header + b"2\t10\t2.0\n2\t11\t3.0\n")
    model = tmp_path / "m"
    flags = ["--protocol", "standard", "--train", str(tmp_path / "train.tsv"), "--test", str(tmp_path / "test.tsv")]
    assert main(["evaluate", *flags, "--model", str(model)]) == 2
    (tmp_path / "trivago.csv").write_bytes(b"user_id,\xff\n")
    assert (
        main(["data", "import", "trivago", "--source", str(tmp_path / "trivago.csv"), "--out", str(tmp_path / "t")])
        == 2
    )
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3, err
    assert "yoochoose-clicks-100k_train_full.txt is not UTF-8 text" in err[0]
    assert "train.tsv is not UTF-8 text" in err[1]
    assert "trivago.csv has no readable header (UnicodeDecodeError" in err[2]


def test_evaluate_and_split_refuse_what_gives_no_result(
    events_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Each exited 0: evaluate printed tables of NaN for an empty file and said "no impressions" for a missing
    # one; split wrote an empty training file when every session ended in the test period.
    model = tmp_path / "m"
    assert (
        main(["train", "--events", str(events_file), "--out", str(model), *TINY_MODEL, "--test-fraction", "0.2"]) == 0
    )
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert main(["evaluate", "--events", str(empty), "--model", str(model)]) == 2
    assert "no test targets" in capsys.readouterr().err
    missing = ["--impressions", str(tmp_path / "typo.jsonl")]
    assert main(["evaluate", "--events", str(events_file), "--model", str(model), *missing]) == 2
    assert "typo.jsonl does not exist" in capsys.readouterr().err
    one_session = tmp_path / "one.jsonl"
    one_session.write_text(events_file.read_text().splitlines()[0] + "\n")
    assert main(["data", "split", "--events", str(one_session), "--out-dir", str(tmp_path / "s")]) == 2
    assert "empty" in capsys.readouterr().err
