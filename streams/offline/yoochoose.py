"""Importer of the YOOCHOOSE (RecSys Challenge 2015) 100k-click sample: GRU4Rec-format files in, contract-v1 out.

Each row `SessionId<TAB>ItemId<TAB>Time` (Unix seconds with milliseconds) becomes a `browse` of `item_id = ItemId`
by `user_id = "yc" + SessionId` (the data has no user ids: a session is a user) with `session_id = SessionId`.
`ts` is the time in milliseconds, plus k ms for the k-th row of a session at the same millisecond (file order),
because the worker orders equal event times by event-id hash. `event_id` is `yoochoose-rsc15-<part>-r<row>`.
The training and test files become `train.jsonl` and `test.jsonl` in the output folder, each in event-time order.

Every event goes through the contract's decoder before it is written: one it refuses (an empty SessionId or
ItemId, a time before 2000) is skipped and counted by the decoder's reason code, and the summary names the first
few skipped rows by part and number. A row without three columns or whose Time is not a finite number stops the
import with an error naming the row (the file is not in the GRU4Rec format).
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from streams.contract.events import BrowseEvent, encode_event
from streams.offline.trivago import MAX_REPORTED_ROWS, contract_rejection, skipped_text

DATASET_DIR = "yoochoose_rsc15_100k"
PARTS = {"train": "yoochoose-clicks-100k_train_full.txt", "test": "yoochoose-clicks-100k_test.txt"}
HEADER = ("SessionId", "ItemId", "Time")


class YoochooseImportError(Exception):
    """The source cannot be imported (missing file, wrong header). Check `--source` points at the data folder."""


@dataclass
class YoochooseReport:
    """Events written per part, rows skipped per reason (the first few by part and number)."""

    events: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    first_skipped: list[tuple[str, str, str]] = field(default_factory=list)  # ("<part> row N", reason, detail)

    def skip(self, part: str, row_number: int, reason: str, detail: str = "") -> None:
        """Count a skipped row; the first `MAX_REPORTED_ROWS` are kept by number (details never quote values)."""
        self.skipped[reason] += 1
        if len(self.first_skipped) < MAX_REPORTED_ROWS:
            self.first_skipped.append((f"{part} row {row_number}", reason, detail))

    def summary(self) -> str:
        """One line for the operator."""
        written = ", ".join(f"{part} {n} browse events" for part, n in self.events.items())
        return f"wrote {written}; skipped: {skipped_text(self.skipped, self.first_skipped)}"


def default_source(repo_root: Path) -> Path:
    """The data folder beside the repository: `<repo>/../shared/data/yoochoose_rsc15_100k`."""
    return repo_root.parent / "shared" / "data" / DATASET_DIR


def _time_ms(path: Path, number: int, row: list[str]) -> int:
    """The row's Time in milliseconds; a row that is not SessionId, ItemId, Time is an error naming it."""
    if len(row) < len(HEADER):
        raise YoochooseImportError(
            f"{path}: row {number} is not SessionId, ItemId, Time ({len(row)} tab-separated fields)"
        )
    try:
        seconds = float(row[2])
    except ValueError:
        raise YoochooseImportError(f"{path}: row {number}: Time is not a number") from None
    if not math.isfinite(seconds):
        raise YoochooseImportError(f"{path}: row {number}: Time is not a finite number")
    return round(seconds * 1000)


def convert(path: Path, part: str, report: YoochooseReport | None = None) -> list[BrowseEvent]:
    """The rows of one GRU4Rec-format file as browse events, sorted by event time (then file order); rows whose
    event the contract refuses are counted in `report` and left out."""
    report = report if report is not None else YoochooseReport()
    if not path.is_file():
        raise YoochooseImportError(f"{path} does not exist; pass --source DIR holding {sorted(PARTS.values())}")
    events: list[tuple[int, int, BrowseEvent]] = []
    last: dict[str, tuple[int, int]] = {}  # session -> (ms, rows so far at that ms)
    try:
        with path.open(encoding="utf-8", newline="") as file:
            reader = csv.reader(file, delimiter="\t")
            if tuple(next(reader, ())) != HEADER:
                raise YoochooseImportError(f"{path}: the header must be {' / '.join(HEADER)}")
            for number, row in enumerate(reader, start=1):
                ms = _time_ms(path, number, row)
                session, item = row[0], row[1]
                seen_ms, count = last.get(session, (ms, 0))
                count = count if seen_ms == ms else 0
                event = BrowseEvent(
                    event_id=f"yoochoose-rsc15-{part}-r{number:06d}",
                    user_id=f"yc{session}",
                    ts_ms=ms + count,
                    session_id=session,
                    item_id=item,
                )
                rejection = contract_rejection(event)
                if rejection is not None:
                    report.skip(part, number, rejection.reason.value, rejection.detail)
                    continue
                last[session] = (ms, count + 1)
                events.append((event.ts_ms, number, event))
    except UnicodeDecodeError:
        raise YoochooseImportError(f"{path} is not UTF-8 text") from None
    events.sort(key=lambda entry: (entry[0], entry[1]))
    return [e for _, _, e in events]


def import_yoochoose(source: Path, out_dir: Path) -> YoochooseReport:
    """Write `train.jsonl` and `test.jsonl` under `out_dir` (temporary names renamed at the end)."""
    report = YoochooseReport()
    out_dir.mkdir(parents=True, exist_ok=True)
    for part, name in PARTS.items():
        events = convert(source / name, part, report)
        out = out_dir / f"{part}.jsonl"
        tmp = out.with_name(out.name + ".tmp")
        with tmp.open("wb") as file:
            for event in events:
                file.write(encode_event(event) + b"\n")
        tmp.replace(out)
        report.events[part] = len(events)
    return report
