"""An input a command cannot use stops it with one line on stderr and exit 2, never a traceback; bad numbers are
refused by the parser, before anything is read; bugs and interruptions still propagate."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from models.errors import CheckpointError, TrainingError
from models.sessionrec import ProtocolError
from streams.cli import model as cli_model
from streams.cli.main import EXIT_INPUT, main
from streams.offline.trivago import TrivagoImportError
from streams.offline.yoochoose import YoochooseImportError


def _one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert not any("Traceback" in line for line in err)
    return err[0]


def test_a_missing_or_wrong_file_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "missing.jsonl"
    assert main(["train", "--events", str(missing), "--out", str(tmp_path / "m")]) == EXIT_INPUT
    assert _one_line(capsys) == f"profilestream: {missing}: No such file or directory"
    assert main(["data", "split", "--events", str(tmp_path), "--out-dir", str(tmp_path / "s")]) == EXIT_INPUT
    assert _one_line(capsys) == f"profilestream: {tmp_path}: Is a directory"


@pytest.mark.parametrize(
    "argv",
    [
        ["evaluate", "--events", "{missing}", "--model", "{missing}"],
        ["model", "export-items", "--model", "{missing}", "--out", "{tmp}/items.jsonl"],
        ["data", "import", "trivago", "--source", "{missing}", "--out", "{tmp}/e.jsonl"],
        ["data", "import", "yoochoose", "--source", "{missing}", "--out-dir", "{tmp}/yc"],
    ],
    ids=["checkpoint", "export", "trivago", "yoochoose"],
)
def test_errors_of_the_model_room_and_the_importers_are_one_line(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = tmp_path / "e.jsonl"
    events.write_text("")
    missing = tmp_path / "missing"
    filled = [a.format(missing=missing, tmp=tmp_path) for a in argv]
    if filled[0] == "evaluate":
        filled[2] = str(events)
    assert main(filled) == EXIT_INPUT
    line = _one_line(capsys)
    assert line.startswith("profilestream: ") and str(missing) in line


@pytest.mark.parametrize(
    "error",
    [
        TrainingError("no item-bearing events"),
        CheckpointError("bad checkpoint"),
        ProtocolError("no test session"),
        TrivagoImportError("no file"),
        YoochooseImportError("no file"),
        PermissionError(13, "Permission denied", "some/file"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_each_input_error_class_is_caught(
    error: Exception, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def fail(args: argparse.Namespace, settings: object) -> int:
        raise error

    monkeypatch.setattr(cli_model, "cmd_split", fail)
    assert main(["data", "split", "--events", "x", "--out-dir", "y"]) == EXIT_INPUT
    expected = "some/file: Permission denied" if isinstance(error, OSError) else str(error)
    assert _one_line(capsys) == f"profilestream: {expected}"


@pytest.mark.parametrize("error", [KeyboardInterrupt(), RuntimeError("a bug"), ValueError("a bug")])
def test_interruptions_and_bugs_are_not_caught(error: BaseException, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(args: argparse.Namespace, settings: object) -> int:
        raise error

    monkeypatch.setattr(cli_model, "cmd_split", fail)
    with pytest.raises(type(error)):
        main(["data", "split", "--events", "x", "--out-dir", "y"])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--epochs", "0"], "argument --epochs: must be 1 or more, not 0"),
        (["train", "--epochs", "-3"], "argument --epochs: must be 1 or more, not -3"),
        (["train", "--dim", "0"], "argument --dim: must be 1 or more"),
        (["train", "--hidden-dim", "x"], "argument --hidden-dim: not a whole number"),
        (["train", "--test-fraction", "1.5"], "argument --test-fraction: must be a share in [0, 1), not 1.5"),
        (["train", "--test-fraction", "1"], "argument --test-fraction: must be a share in [0, 1)"),
        (["train", "--test-fraction=-0.2"], "argument --test-fraction: must be a share in [0, 1), not -0.2"),
        (["train", "--test-fraction", "nan"], "argument --test-fraction: must be a share in [0, 1)"),
        (["evaluate", "--test-fraction", "0"], "argument --test-fraction: must be a share in (0, 1), not 0"),
        (["evaluate", "--test-fraction=-0.2"], "argument --test-fraction: must be a share in (0, 1)"),
        (["evaluate", "--test-fraction", "1"], "argument --test-fraction: must be a share in (0, 1)"),
        (["evaluate", "--k", "0"], "argument --k: must be 1 or more, not 0"),
        (["evaluate", "--threads", "0"], "argument --threads: must be 1 or more, not 0"),
        (["data", "split", "--test-fraction", "0"], "argument --test-fraction: must be a share in (0, 1)"),
    ],
)
def test_numbers_are_checked_when_parsed(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    required = {
        "train": ["--events", "x", "--out", str(tmp_path / "m")],
        "evaluate": ["--events", "x", "--model", "m"],
        "data": ["--events", "x", "--out-dir", str(tmp_path / "s")],
    }[argv[0]]
    with pytest.raises(SystemExit) as stopped:
        main([*argv, *required])
    assert stopped.value.code == 2
    assert message in capsys.readouterr().err


def test_zero_is_a_valid_train_test_fraction() -> None:
    from streams.cli.main import build_parser

    args = build_parser().parse_args(["train", "--events", "x", "--out", "m", "--test-fraction", "0"])
    assert args.test_fraction == 0.0


def test_backfill_checks_its_events_file_before_the_model_and_kafka(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from streams.worker import backfill, encoder_runtime

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("reached the model or Kafka")

    monkeypatch.setattr(encoder_runtime.EncoderRuntime, "load", never)
    monkeypatch.setattr(backfill, "run_backfill", never)
    missing = tmp_path / "history.jsonl"
    argv = ["backfill", "--events", str(missing), "--kafka-bootstrap", "127.0.0.1:1"]
    assert main(argv) == 2
    assert _one_line(capsys) == f"profilestream backfill: cannot read {missing}: No such file or directory"
    assert main(["backfill", "--events", str(tmp_path), "--kafka-bootstrap", "127.0.0.1:1"]) == 2
    assert _one_line(capsys) == f"profilestream backfill: cannot read {tmp_path}: Is a directory"
