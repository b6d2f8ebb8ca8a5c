"""Importer of the YOOCHOOSE (RecSys Challenge 2015) 100k-click sample: GRU4Rec-format files in, contract-v1 out.

Each row `SessionId<TAB>ItemId<TAB>Time` (Unix seconds with milliseconds) becomes a `browse` of `item_id = ItemId`
by `user_id = "yc" + SessionId` (the data has no user ids: a session is a user) with `session_id = SessionId`.
`ts` is the time in milliseconds, plus k ms for the k-th row of a session at the same millisecond (file order),
because the worker orders equal event times by event-id hash. `event_id` is `yoochoose-rsc15-<part>-r<row>`.
The training and test files become `train.jsonl` and `test.jsonl` in the output folder, each in event-time order.
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from streams.contract.events import BrowseEvent, encode_event

DATASET_DIR = "yoochoose_rsc15_100k"
PARTS = {"train": "yoochoose-clicks-100k_train_full.txt", "test": "yoochoose-clicks-100k_test.txt"}
HEADER = ("SessionId", "ItemId", "Time")


class YoochooseImportError(Exception):
    """The source cannot be imported (missing file, wrong header). Check `--source` points at the data folder."""


@dataclass
class YoochooseReport:
    """Rows read and events written per part."""

    events: Counter[str] = field(default_factory=Counter)

    def summary(self) -> str:
        """One line for the operator."""
        return "wrote " + ", ".join(f"{part} {n} browse events" for part, n in self.events.items())


def default_source(repo_root: Path) -> Path:
    """The data folder beside the repository: `<repo>/../shared/data/yoochoose_rsc15_100k`."""
    return repo_root.parent / "shared" / "data" / DATASET_DIR


def convert(path: Path, part: str) -> list[BrowseEvent]:
    """The rows of one GRU4Rec-format file as browse events, sorted by event time (then file order)."""
    if not path.is_file():
        raise YoochooseImportError(f"{path} does not exist; pass --source DIR holding {sorted(PARTS.values())}")
    events: list[tuple[int, int, BrowseEvent]] = []
    last: dict[str, tuple[int, int]] = {}  # session -> (ms, rows so far at that ms)
    with path.open(encoding="utf-8", newline="") as file:
        reader = csv.reader(file, delimiter="\t")
        if tuple(next(reader, ())) != HEADER:
            raise YoochooseImportError(f"{path}: the header must be {' / '.join(HEADER)}")
        for number, row in enumerate(reader, start=1):
            try:
                session, item, ms = row[0], row[1], round(float(row[2]) * 1000)
            except (IndexError, ValueError) as exc:
                raise YoochooseImportError(f"{path}: row {number} is not SessionId, ItemId, Time ({exc})") from exc
            seen_ms, count = last.get(session, (ms, 0))
            count = count if seen_ms == ms else 0
            last[session] = (ms, count + 1)
            event = BrowseEvent(
                event_id=f"yoochoose-rsc15-{part}-r{number:06d}",
                user_id=f"yc{session}",
                ts_ms=ms + count,
                session_id=session,
                item_id=item,
            )
            events.append((event.ts_ms, number, event))
    events.sort(key=lambda entry: (entry[0], entry[1]))
    return [e for _, _, e in events]


def import_yoochoose(source: Path, out_dir: Path) -> YoochooseReport:
    """Write `train.jsonl` and `test.jsonl` under `out_dir` (temporary names renamed at the end)."""
    report = YoochooseReport()
    out_dir.mkdir(parents=True, exist_ok=True)
    for part, name in PARTS.items():
        events = convert(source / name, part)
        out = out_dir / f"{part}.jsonl"
        tmp = out.with_name(out.name + ".tmp")
        with tmp.open("wb") as file:
            for event in events:
                file.write(encode_event(event) + b"\n")
        tmp.replace(out)
        report.events[part] = len(events)
    return report
