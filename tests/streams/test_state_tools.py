"""The state tools' exit codes on a state directory they cannot use (no broker): 1 means "no record" only."""

from __future__ import annotations

from pathlib import Path

import pytest
import rocksdict

from state.codec import encode_state
from state.record import UserState
from state.rocksdb_options import RocksDBTuning, rocksdict_options
from streams.cli.main import EXIT_INPUT, main
from streams.worker.store_layout import TABLE_NAME, table_dir


def _state_dir(tmp_path: Path, values: dict[bytes, bytes]) -> Path:
    """A worker's state directory whose partition 0 holds ``values``."""
    state_dir = tmp_path / "state"
    tables = table_dir(state_dir)
    tables.mkdir(parents=True)
    db = rocksdict.Rdict(str(tables / f"{TABLE_NAME}-0.db"), rocksdict_options(RocksDBTuning()))
    for key, value in values.items():
        db[key] = value
    db.close()
    return state_dir


def test_a_state_directory_that_is_not_one_is_a_clear_error_not_no_record(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A script checking an erasure reads exit 1 as "the user is gone": a wrong --state-dir must not look so.
    missing = ["--state-dir", str(tmp_path / "nowhere")]
    assert main(["state", "inspect", "user-1", *missing]) == EXIT_INPUT
    assert main(["state", "stats", *missing]) == EXIT_INPUT
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all(line.startswith("profilestream state ") for line in err), err
    assert "Traceback" not in "".join(err)


def test_a_record_that_does_not_decode_is_a_clear_error_and_fails_the_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = encode_state(UserState.new())
    state_dir = ["--state-dir", str(_state_dir(tmp_path, {b"user-ok": good, b"user-bad": good[:-1] + b"\x00"}))]
    assert main(["state", "inspect", "user-bad", *state_dir]) == EXIT_INPUT
    assert "user-bad" not in capsys.readouterr().err
    assert main(["state", "inspect", "nobody", *state_dir]) == 1
    assert main(["state", "stats", *state_dir]) == 0
    assert main(["state", "stats", "--check", *state_dir]) == 1, "one value does not decode"
