"""Importer of the trivago RecSys Challenge 2019 slice: its CSV rows in, contract-v1 JSON lines out.

Mapping of `action_type` (the data README lists the ten values):

* `interaction item image|info|rating|deals` -> browse of item `reference`;
* `clickout item` (trivago's conversion: a referral to a booking site) -> purchase of item `reference`,
  quantity 1, price = the price shown next to the clicked item in the click-out's `prices` (0 when the item is
  not among the impressions); the data has no currency column, the events say `EUR` (a label, not a conversion);
* `search for destination|poi|item`, `filter selection`, `change of sort order` -> search whose query is
  `reference` (a city, a POI name, an item id, a filter or a sort order name).

Every item-bearing event's `category` is the row's `city` (the city of the current search). `event_id` is
`trivago-rsc19-r<row number>`, unique and stable for the file. `ts` is the row's `timestamp` (seconds) times
1000, plus k milliseconds for the k-th row (k = 0, 1, ..., at most 999) of the same user within the same second,
in file order (session and step order): the data has one-second resolution and many actions share a second,
and the worker orders equal event times by event-id hash, which would shuffle them. The events are written in
event-time order, so replaying the file through Kafka and reading it offline fold every user's events in the
same, original order.

Every event goes through the contract's decoder before it is written: an event it refuses (an empty user id,
a time before 2000) is skipped and counted by the decoder's reason code, like the rows that map to no event
(`short_row`, `empty_reference`, `bad_timestamp`, `unknown_action`, `bad_prices`); the summary names the first
few skipped rows by number.

The impressions of each click-out do not fit the contract, so they go to a **side file** (never into the
events): `<out stem>.impressions.jsonl`, one JSON object per click-out, in the order of the events file:
`{"event_id": ..., "impressions": [item ids, in shown order], "prices": [ints aligned with impressions]}`.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from streams.contract.decoder import Reason, Rejection, decode_event
from streams.contract.events import BrowseEvent, Event, PurchaseEvent, SearchEvent, encode_event

SOURCE_FILE = "events.csv.gz"
DATASET_DIR = "trivago_rsc19_100k"
IMPRESSIONS_SUFFIX = ".impressions.jsonl"
CURRENCY = "EUR"
COLUMNS = (
    "user_id",
    "session_id",
    "timestamp",
    "step",
    "action_type",
    "reference",
    "platform",
    "city",
    "device",
    "current_filters",
    "impressions",
    "prices",
)
BROWSE_ACTIONS = frozenset(
    {"interaction item image", "interaction item info", "interaction item rating", "interaction item deals"}
)
SEARCH_ACTIONS = frozenset(
    {"search for destination", "search for poi", "search for item", "filter selection", "change of sort order"}
)
CLICKOUT = "clickout item"
MAX_SPREAD_MS = 999  # a user's 1001st event within one second shares its time with the 1000th
MAX_REPORTED_ROWS = 10
"""Skipped rows named by number in an import's summary (the counts cover all of them)."""


class TrivagoImportError(Exception):
    """The source cannot be imported (missing file, wrong columns). Check `--source` points at the data folder."""


@dataclass(frozen=True, slots=True)
class Impressions:
    """What was shown at one click-out: item ids in shown order and their prices."""

    event_id: str
    impressions: tuple[str, ...]
    prices: tuple[int, ...]

    def to_json(self) -> str:
        """One line of the side file."""
        return json.dumps(
            {"event_id": self.event_id, "impressions": list(self.impressions), "prices": list(self.prices)},
            separators=(",", ":"),
        )


def contract_rejection(event: Event) -> Rejection | None:
    """Why the contract's decoder refuses `event` as it would be written (None: it accepts it)."""
    try:
        line = encode_event(event)
    except (ValueError, TypeError) as exc:  # a value JSON or UTF-8 cannot hold; the message may quote it
        return Rejection(Reason.UNDECODABLE, f"the event cannot be encoded ({type(exc).__name__})")
    decoded = decode_event(line)
    return decoded if isinstance(decoded, Rejection) else None


def skipped_text(skipped: Counter[str], first: list[tuple[str, str, str]]) -> str:
    """`skipped` counts per reason and the first skipped rows as (row, reason, detail): one line, or "none"."""
    if not skipped:
        return "none"
    counts = ", ".join(f"{k} {v}" for k, v in sorted(skipped.items()))
    rows = "; ".join(f"{row}: {reason}" + (f" ({detail})" if detail else "") for row, reason, detail in first)
    return f"{counts} (first skipped: {rows})"


@dataclass
class ImportReport:
    """Counts of an import: rows read, events written per type, rows skipped per reason (the first few by number)."""

    rows: int = 0
    events: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    first_skipped: list[tuple[str, str, str]] = field(default_factory=list)  # ("row N", reason, detail)
    clickouts_with_impressions: int = 0

    def skip(self, row_number: int, reason: str, detail: str = "") -> None:
        """Count a skipped row; the first `MAX_REPORTED_ROWS` are kept by number (details never quote values)."""
        self.skipped[reason] += 1
        if len(self.first_skipped) < MAX_REPORTED_ROWS:
            self.first_skipped.append((f"row {row_number}", reason, detail))

    def summary(self) -> str:
        """One line for the operator."""
        types = ", ".join(f"{k} {v}" for k, v in sorted(self.events.items()))
        return (
            f"read {self.rows} rows; wrote {sum(self.events.values())} events ({types}); "
            f"{self.clickouts_with_impressions} click-outs with impressions; "
            f"skipped: {skipped_text(self.skipped, self.first_skipped)}"
        )


def default_source(repo_root: Path) -> Path:
    """The data folder beside the repository: `<repo>/../shared/data/trivago_rsc19_100k`."""
    return repo_root.parent / "shared" / "data" / DATASET_DIR


def impressions_path(events_path: Path) -> Path:
    """The side file that belongs to an events file: `x.jsonl` -> `x.impressions.jsonl`."""
    return events_path.with_name(events_path.stem + IMPRESSIONS_SUFFIX)


def read_rows(source: Path) -> Iterator[dict[str, str]]:
    """The CSV rows of `source` (a data folder holding `events.csv.gz`, or the `.csv`/`.csv.gz` file itself)."""
    path = source / SOURCE_FILE if source.is_dir() else source
    if not path.is_file():
        raise TrivagoImportError(f"{path} does not exist; pass --source DIR with the trivago {SOURCE_FILE}")
    with path.open("rb") as file:
        raw = gzip.GzipFile(fileobj=file, mode="rb") if path.suffix == ".gz" else file
        with io.TextIOWrapper(raw, encoding="utf-8", newline="") as text:
            reader = csv.DictReader(text)
            try:
                fieldnames = reader.fieldnames  # reads the header: not UTF-8, or not gzip, fails here already
            except (EOFError, OSError, UnicodeDecodeError, csv.Error) as exc:
                raise TrivagoImportError(f"{path} has no readable header ({type(exc).__name__}: {exc})") from exc
            missing = set(COLUMNS) - set(fieldnames or ())
            if missing:
                raise TrivagoImportError(f"{path} lacks the columns {sorted(missing)}")
            try:
                yield from reader
            except (EOFError, OSError, UnicodeDecodeError, csv.Error) as exc:
                # A truncated or damaged download: say so in one line, not with a traceback.
                raise TrivagoImportError(f"{path} cannot be read to its end ({type(exc).__name__}: {exc})") from exc


def convert_row(row: dict[str, str], row_number: int) -> tuple[Event, Impressions | None] | str:
    """One CSV row -> (event, impressions of a click-out or None), or the reason it is skipped."""
    if None in row.values():
        return "short_row"  # fewer fields than the header names (csv gives None for the missing ones)
    action = row["action_type"]
    reference = row["reference"].strip()
    if not reference:
        return "empty_reference"
    try:
        ts_ms = int(row["timestamp"]) * 1000
    except ValueError:
        return "bad_timestamp"
    event_id = f"trivago-rsc19-r{row_number:06d}"
    user_id, session_id = row["user_id"], row["session_id"] or None
    category = row["city"].strip() or None
    if action in SEARCH_ACTIONS:
        search = SearchEvent(event_id=event_id, user_id=user_id, ts_ms=ts_ms, session_id=session_id, query=reference)
        return search, None
    if action in BROWSE_ACTIONS:
        browse = BrowseEvent(
            event_id=event_id, user_id=user_id, ts_ms=ts_ms, session_id=session_id, item_id=reference, category=category
        )
        return browse, None
    if action != CLICKOUT:
        return "unknown_action"
    shown = tuple(i for i in row["impressions"].split("|") if i)
    try:
        prices = tuple(int(p) for p in row["prices"].split("|") if p)
    except ValueError:
        return "bad_prices"
    if len(prices) != len(shown):
        prices = ()
    price = float(prices[shown.index(reference)]) if prices and reference in shown else 0.0
    event = PurchaseEvent(
        event_id=event_id,
        user_id=user_id,
        ts_ms=ts_ms,
        session_id=session_id,
        item_id=reference,
        category=category,
        quantity=1,
        price=price,
        currency=CURRENCY,
    )
    return event, Impressions(event.event_id, shown, prices) if shown else None


def import_trivago(source: Path, out: Path) -> ImportReport:
    """Convert the slice at `source` into contract-v1 JSON lines at `out` and its impressions side file.

    Both files are written to temporary names and renamed at the end, so a failed import leaves no partial file.
    """
    report = ImportReport()
    converted: list[tuple[int, int, Event, Impressions | None]] = []
    for number, row in enumerate(read_rows(source), start=1):
        report.rows += 1
        result = convert_row(row, number)
        if isinstance(result, str):
            report.skip(number, result)
            continue
        event, shown = result
        # Checked before the millisecond spread, which cannot take a whole second's time out of the contract's
        # range (it ends at a whole second), so the event as written is accepted too.
        rejection = contract_rejection(event)
        if rejection is not None:
            report.skip(number, rejection.reason.value, rejection.detail)
            continue
        converted.append((event.ts_ms, number, event, shown))
    converted.sort(key=lambda entry: (entry[0], entry[1]))  # event time, then file order
    converted = _spread_within_seconds(converted)
    out.parent.mkdir(parents=True, exist_ok=True)
    side = impressions_path(out)
    tmp_events, tmp_side = out.with_name(out.name + ".tmp"), side.with_name(side.name + ".tmp")
    with tmp_events.open("wb") as events_file, tmp_side.open("w", encoding="utf-8") as side_file:
        for _, _, event, shown in converted:
            events_file.write(encode_event(event) + b"\n")
            report.events[event.type] += 1
            if shown is not None:
                side_file.write(shown.to_json() + "\n")
                report.clickouts_with_impressions += 1
    tmp_events.replace(out)
    tmp_side.replace(side)
    return report


def _spread_within_seconds(
    converted: list[tuple[int, int, Event, Impressions | None]],
) -> list[tuple[int, int, Event, Impressions | None]]:
    """Give the k-th event of a user within one second k more milliseconds (input sorted by time, file order)."""
    seen: dict[str, tuple[int, int]] = {}  # user -> (second's ts_ms, events so far in it)
    out = []
    for ts_ms, number, event, shown in converted:
        second, count = seen.get(event.user_id, (ts_ms, 0))
        count = count if second == ts_ms else 0
        seen[event.user_id] = (ts_ms, count + 1)
        moved = replace(event, ts_ms=ts_ms + min(count, MAX_SPREAD_MS))
        out.append((moved.ts_ms, number, moved, shown))
    out.sort(key=lambda entry: (entry[0], entry[1]))
    return out


def read_impressions(path: Path) -> dict[str, tuple[str, ...]]:
    """Event id -> shown item ids, from an impressions side file (see the module docstring)."""
    shown: dict[str, tuple[str, ...]] = {}
    with Path(path).open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                shown[str(record["event_id"])] = tuple(str(i) for i in record["impressions"])
            except (ValueError, KeyError, TypeError) as exc:
                raise TrivagoImportError(f"{path}: line {number} is not an impressions record ({exc})") from exc
    return shown
