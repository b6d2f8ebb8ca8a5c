"""Input of the standard session-based protocol (`models.sessionrec`) from a pair of train and test files.

GRU4Rec-format files (`.tsv`/`.txt`: `SessionId<TAB>ItemId<TAB>Time`) make each session a user; contract-v1
JSON-lines files (`.jsonl`) are read with the worker's decoder and joined by user id, so that a user's profile has
seen their training-period events before a test session.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

SESSION_GAP_MS = 30 * 60 * 1000  # events without session_id: a gap longer than this starts a new session
TSV_SUFFIXES = frozenset({".tsv", ".txt"})


@dataclass(frozen=True)
class StandardInput:
    """One time-ordered history per user over both files, each event's session key and test flag."""

    histories: list[Any]  # list[list[EventInput]]
    keys: list[list[str]]
    is_test: list[list[bool]]
    train_text: str  # one line on what was read from each file, for the command's log
    test_text: str


def session_keys(events: list[Any]) -> list[str]:
    """Each event's session: its `session_id`, or the user's run of events without a 30-minute gap."""
    keys: list[str] = []
    run, previous = 0, None
    for e in events:
        if previous is not None and e.ts_ms - previous > SESSION_GAP_MS:
            run += 1
        previous = e.ts_ms
        keys.append(e.session_id or f"{e.user_id}#{run}")
    return keys


def _read_one(path: Path) -> tuple[list[Any], list[list[str]], str]:
    """Histories and session keys of one GRU4Rec-format or contract-v1 file."""
    from models.sessionrec import read_session_tsv
    from streams.offline.histories import read_histories

    if path.suffix in TSV_SUFFIXES:
        histories, keys = read_session_tsv(path)
        return histories, keys, f"{path.name}: {len(histories)} sessions (GRU4Rec format)"
    read, report = read_histories(path)
    return read.inputs, [session_keys(events) for events in read.events], f"{path.name}: {report.summary()}"


def read_standard_input(train_path: Path, test_path: Path) -> StandardInput:
    """Read and join a train and a test file (TSV: by position, a session is a user; contract: by user id)."""
    from streams.offline.histories import read_split_histories

    train_h, train_k, train_text = _read_one(train_path)
    test_h, test_k, test_text = _read_one(test_path)
    if train_path.suffix in TSV_SUFFIXES or test_path.suffix in TSV_SUFFIXES:
        return StandardInput(
            [*train_h, *test_h],
            [*train_k, *test_k],
            [[False] * len(h) for h in train_h] + [[True] * len(h) for h in test_h],
            train_text,
            test_text,
        )
    read, _, _ = read_split_histories(train_path, test_path)
    keys = [session_keys(events) for events in read.events]
    return StandardInput(read.inputs, keys, read.is_test, train_text, test_text)
