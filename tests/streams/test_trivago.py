"""The trivago importer on a few synthetic rows in the real column layout."""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from streams.contract.decoder import Rejection, decode_event
from streams.contract.events import BrowseEvent, PurchaseEvent, SearchEvent
from streams.offline.trivago import (
    COLUMNS,
    TrivagoImportError,
    import_trivago,
    impressions_path,
    read_impressions,
)

T0 = 1_541_599_523  # seconds, as in the data

ROWS = [
    # user, session, timestamp, step, action, reference, platform, city, device, filters, impressions, prices
    ("U1", "s1", T0, 1, "interaction item image", "5967314", "FR", "Marseille, France", "tablet", "", "", ""),
    ("U1", "s1", T0 + 30, 3, "clickout item", "5967314", "FR", "Marseille, France", "tablet", "",
     "100131|5967314|913787", "71|119|107"),
    ("U1", "s1", T0 + 15, 2, "search for poi", "Vieux Port", "FR", "Marseille, France", "tablet", "", "", ""),
    ("U2", "s2", T0 + 15, 1, "filter selection", "Sort By Distance", "DE", "Berlin, Germany", "mobile", "", "", ""),
    ("U2", "s2", T0 + 40, 2, "clickout item", "42", "DE", "Berlin, Germany", "mobile", "Free WiFi", "7|8", "50|60"),
    ("U2", "s2", T0 + 41, 3, "interaction item deals", "", "DE", "Berlin, Germany", "mobile", "", "", ""),
    ("U2", "s2", T0 + 42, 4, "open the app", "x", "DE", "Berlin, Germany", "mobile", "", "", ""),
    ("U2", "s2", T0 + 40, 5, "interaction item info", "42", "DE", "Berlin, Germany", "mobile", "", "", ""),
    ("U2", "s2", T0 + 40, 6, "interaction item rating", "7", "DE", "Berlin, Germany", "mobile", "", "", ""),
]  # fmt: skip


def csv_bytes(rows: Sequence[tuple[object, ...]], columns: tuple[str, ...] = COLUMNS) -> bytes:
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(columns)
    writer.writerows(rows)
    return text.getvalue().encode()


@pytest.fixture
def source(tmp_path: Path) -> Path:
    folder = tmp_path / "trivago"
    folder.mkdir()
    (folder / "events.csv.gz").write_bytes(gzip.compress(csv_bytes(ROWS)))
    return folder


def test_import_maps_actions_and_orders_by_event_time(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "events.jsonl"
    report = import_trivago(source, out)
    assert report.rows == 9
    assert report.events == {"browse": 3, "search": 2, "purchase": 2}
    assert report.skipped == {"empty_reference": 1, "unknown_action": 1}
    events = [decode_event(line) for line in out.read_bytes().splitlines()]
    assert [e.type for e in events if not isinstance(e, Rejection)] == [
        "browse",
        "search",  # U1's POI search (T0+15, row 3) ...
        "search",  # ... and U2's filter at the same second (another user: no offset), in file order
        "purchase",
        "purchase",
        "browse",
        "browse",
    ]
    browse, poi, refinement, clickout, other, info, rating = events
    # One user's actions within one second keep their order through millisecond offsets.
    assert [e.ts_ms for e in (other, info, rating) if not isinstance(e, Rejection)] == [
        (T0 + 40) * 1000,
        (T0 + 40) * 1000 + 1,
        (T0 + 40) * 1000 + 2,
    ]
    assert isinstance(poi, SearchEvent) and isinstance(refinement, SearchEvent)
    assert poi.ts_ms == refinement.ts_ms == (T0 + 15) * 1000
    assert browse == BrowseEvent(
        event_id="trivago-rsc19-r000001",
        user_id="U1",
        ts_ms=T0 * 1000,
        session_id="s1",
        item_id="5967314",
        category="Marseille, France",
    )
    assert isinstance(poi, SearchEvent) and poi.query == "Vieux Port"
    assert isinstance(refinement, SearchEvent) and refinement.query == "Sort By Distance"
    assert isinstance(clickout, PurchaseEvent)
    assert (clickout.item_id, clickout.price, clickout.quantity, clickout.currency) == ("5967314", 119.0, 1, "EUR")
    assert isinstance(other, PurchaseEvent) and other.price == 0.0  # clicked item not among the impressions


def test_impressions_go_to_a_side_file_keyed_by_event_id(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "events.jsonl"
    report = import_trivago(source, out)
    side = impressions_path(out)
    assert side == tmp_path / "events.impressions.jsonl"
    assert report.clickouts_with_impressions == 2
    first = json.loads(side.read_text().splitlines()[0])
    assert first == {
        "event_id": "trivago-rsc19-r000002",
        "impressions": ["100131", "5967314", "913787"],
        "prices": [71, 119, 107],
    }
    assert read_impressions(side) == {
        "trivago-rsc19-r000002": ("100131", "5967314", "913787"),
        "trivago-rsc19-r000005": ("7", "8"),
    }
    assert b"impressions" not in out.read_bytes()  # never in the contract events


def test_plain_csv_and_clear_errors(tmp_path: Path) -> None:
    plain = tmp_path / "rows.csv"
    plain.write_bytes(csv_bytes(ROWS[:1]))
    assert import_trivago(plain, tmp_path / "a.jsonl").events == {"browse": 1}
    with pytest.raises(TrivagoImportError, match="does not exist"):
        import_trivago(tmp_path / "missing", tmp_path / "b.jsonl")
    wrong = tmp_path / "wrong.csv"
    wrong.write_bytes(csv_bytes([], columns=COLUMNS[:-1]))
    with pytest.raises(TrivagoImportError, match="prices"):
        import_trivago(wrong, tmp_path / "c.jsonl")
    assert not (tmp_path / "c.jsonl").exists()
    broken = tmp_path / "broken.impressions.jsonl"
    broken.write_text('{"event_id": "x"}\n')
    with pytest.raises(TrivagoImportError, match="line 1"):
        read_impressions(broken)


def test_events_the_contract_refuses_are_skipped_by_reason_with_their_rows(tmp_path: Path) -> None:
    bad = [
        ("", "s3", T0, 1, "interaction item image", "5967314", "FR", "Paris, France", "tablet", "", "", ""),
        ("U3", "s3", 99, 2, "interaction item image", "5967314", "FR", "Paris, France", "tablet", "", "", ""),
        ("U3", "s3", -5, 3, "interaction item image", "5967314", "FR", "Paris, France", "tablet", "", "", ""),
        ("U3", " ", T0, 4, "interaction item image", "5967314", "FR", "Paris, France", "tablet", "", "", ""),
        ("U3", "s3", "1e9", 5, "interaction item image", "5967314", "FR", "Paris, France", "tablet", "", "", ""),
    ]  # fmt: skip
    source = tmp_path / "rows.csv"
    source.write_bytes(csv_bytes([*ROWS, *bad]))
    out = tmp_path / "events.jsonl"
    report = import_trivago(source, out)
    assert report.rows == 14 and sum(report.events.values()) == 7  # the good rows' events only
    assert report.skipped == {
        "empty_reference": 1,
        "unknown_action": 1,
        "invalid_value": 2,
        "ts_out_of_range": 2,
        "bad_timestamp": 1,
    }
    assert report.first_skipped == [
        ("row 6", "empty_reference", ""),
        ("row 7", "unknown_action", ""),
        ("row 10", "invalid_value", "field 'user_id' must not be empty"),
        ("row 11", "ts_out_of_range", "ts must be milliseconds since the epoch, years 2000 to 2099"),
        ("row 12", "ts_out_of_range", "ts must be milliseconds since the epoch, years 2000 to 2099"),
        ("row 13", "invalid_value", "field 'session_id' must not be empty"),
        ("row 14", "bad_timestamp", ""),
    ]
    summary = report.summary()
    assert (
        "skipped: bad_timestamp 1, empty_reference 1, invalid_value 2, ts_out_of_range 2, unknown_action 1" in summary
    )
    assert "row 10: invalid_value (field 'user_id' must not be empty)" in summary and "Paris" not in summary
    # Everything written is an event the worker accepts.
    lines = out.read_bytes().splitlines()
    assert len(lines) == 7 and not any(isinstance(decode_event(line), Rejection) for line in lines)


def test_only_the_first_skipped_rows_are_named(tmp_path: Path) -> None:
    row = ("U1", "s1", T0, 1, "open the app", "x", "FR", "Paris, France", "tablet", "", "", "")
    source = tmp_path / "rows.csv"
    source.write_bytes(csv_bytes([row] * 25))
    report = import_trivago(source, tmp_path / "events.jsonl")
    assert report.skipped == {"unknown_action": 25}
    assert [r for r, _, _ in report.first_skipped] == [f"row {n}" for n in range(1, 11)]


def test_a_short_row_is_skipped_and_a_truncated_download_is_a_clear_error(tmp_path: Path) -> None:
    short = tmp_path / "short.csv"
    short.write_bytes(csv_bytes(ROWS[:1]) + b"U9,s9,1541599523\n")  # three fields of twelve
    report = import_trivago(short, tmp_path / "a.jsonl")
    assert report.events == {"browse": 1} and report.skipped == {"short_row": 1}
    truncated = tmp_path / "events.csv.gz"
    truncated.write_bytes(gzip.compress(csv_bytes(ROWS * 50))[:-40])
    with pytest.raises(TrivagoImportError, match="cannot be read to its end"):
        import_trivago(truncated, tmp_path / "b.jsonl")
    assert not (tmp_path / "b.jsonl").exists()
