"""``profilestream produce`` and ``demo-traffic`` without a broker: every invalid line is reported by number and
skipped, valid lines leave as they are written, and unusable arguments stop the command before it connects."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streams.cli.main import build_parser
from streams.cli.main import main as cli_main
from streams.client.producer import now_ms
from streams.client.pseudonym import Pseudonymiser
from streams.contract.events import MAX_FUTURE_SKEW_MS
from tests.streams.fake_kafka import record_kafka

KEY = b"0123456789abcdef0123456789abcdef"
TS = 1_767_225_600_000


def _line(**fields: object) -> bytes:
    document = {"schema": 1, "event_id": "e1", "user_id": "u1", "type": "browse", "ts": TS, "item_id": "i1"}
    return json.dumps({**document, **fields}).encode()


def test_produce_reports_every_invalid_line_and_sends_the_valid_ones_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    made = record_kafka(monkeypatch)
    own = _line(event_id="e1", coupon={"code": "X1", "tiers": [1, 2.50]})  # a field of the producer's own
    future = _line(event_id="e2", ts=now_ms() + MAX_FUTURE_SKEW_MS + 3_600_000)
    free = _line(event_id="e3", type="purchase", user_id="u2", quantity=1, price=None, currency=None, session_id=None)
    lone = _line(event_id="e4", user_id="\ud83d")  # json.dumps writes the escape \ud83d
    lines = [own, future, b"", b"{not json", b"  " + free + b"\r", lone]
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(lines) + b"\n")

    assert cli_main(["produce", str(events)]) == 1
    out, err = capsys.readouterr()
    assert out.strip() == "sent 2 events, skipped 3 invalid lines"
    assert err.splitlines() == [
        "line 2: ts_out_of_range: ts is more than 10 minutes in the future",
        "line 4: not_json: message is not JSON: Expecting property name enclosed in double quotes at line 1 column 2",
        "line 6: invalid_value: field 'user_id' has a lone surrogate escape",
    ]
    [kafka] = made
    assert kafka.sent == [("events.browse", own, b"u1"), ("events.purchase", free, b"u2")]
    assert kafka.flushed


def test_produce_with_a_pseudonym_key_keeps_the_fields_of_the_producers_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = record_kafka(monkeypatch)
    key_file = tmp_path / "pseudonym.key"
    key_file.write_bytes(KEY)
    line = _line(coupon={"code": "X1"})
    events = tmp_path / "events.jsonl"
    events.write_bytes(line + b"\n")
    assert cli_main(["produce", str(events), "--pseudonym-key-file", str(key_file)]) == 0
    alias = Pseudonymiser(KEY)("u1")
    [(topic, value, key)] = made[0].sent
    assert (topic, key) == ("events.browse", alias.encode())
    assert json.loads(value) == {**json.loads(line), "user_id": alias}


@pytest.mark.parametrize("name", ["missing.jsonl", "."])
def test_produce_stops_before_connecting_when_the_file_cannot_be_read(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    made = record_kafka(monkeypatch)
    path = tmp_path / name
    assert cli_main(["produce", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"profilestream produce: cannot read {path}: ") and len(err.splitlines()) == 1
    assert made == []  # no producer was made, so no connection


@pytest.mark.parametrize("rate", ["0", "-1", "0.0", "nan", "inf", "fast"])
def test_demo_traffic_refuses_a_rate_that_is_not_above_zero(rate: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        build_parser().parse_args(["demo-traffic", "--rate", rate])
    assert stopped.value.code == 2
    assert "argument --rate" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args",
    [
        ["demo-traffic", "--users", "0"],
        ["demo-events", "--users", "0", "--out", "x"],
        ["demo-events", "--count", "-5", "--out", "x"],
        ["demo-events", "--count", "many", "--out", "x"],
    ],
)
def test_demo_commands_refuse_counts_below_one(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    # No users made a traceback (a choice from an empty sequence); a negative count wrote "-5 events".
    with pytest.raises(SystemExit) as stopped:
        build_parser().parse_args(args)
    assert stopped.value.code == 2
    assert f"argument {args[1]}" in capsys.readouterr().err


def test_demo_traffic_takes_a_fractional_rate() -> None:
    assert build_parser().parse_args(["demo-traffic", "--rate", "0.5"]).rate == 0.5


def test_produce_counts_no_line_as_sent_that_the_broker_did_not_take(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The line numbers of records whose delivery failed, the tally without them, exit 4 (the real broker's
    refusal: tests/streams/test_producer.py)."""
    made = record_kafka(monkeypatch, failing={2, 3})
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(_line(event_id=f"e{n}") for n in range(1, 5)) + b"\n")

    assert cli_main(["produce", str(events)]) == 4
    out, err = capsys.readouterr()
    assert out.strip() == "sent 2 events, 2 not delivered, skipped 0 invalid lines"
    assert err.splitlines() == ["line 2: not delivered: KafkaTimeoutError", "line 3: not delivered: KafkaTimeoutError"]
    assert len(made[0].sent) == 4


def test_produce_reads_an_enormous_line_in_pieces_and_reports_it_as_too_large(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Read whole, a line of a few hundred MB took that much memory before the 64 KiB check refused it.
    made = record_kafka(monkeypatch)
    padded = _line(event_id="e3") + b" " * 60_000  # whitespace around an event is no part of it
    events = tmp_path / "events.jsonl"
    with events.open("wb") as written:
        written.write(_line(event_id="e1") + b"\n")
        written.write(b'{"pad":"' + b"x" * 5_000_000 + b'"}\n')
        written.write(padded + b"\n")
        written.write(b"y" * 300_000)  # the last line, without a newline

    assert cli_main(["produce", str(events)]) == 1
    out, err = capsys.readouterr()
    assert out.strip() == "sent 2 events, skipped 2 invalid lines"
    assert err.splitlines() == [
        "line 2: too_large: the line is longer than 131072 bytes",
        "line 4: too_large: the line is longer than 131072 bytes",
    ]
    assert [value for _, value, _ in made[0].sent] == [_line(event_id="e1"), _line(event_id="e3")]
