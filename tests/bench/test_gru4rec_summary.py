"""The GRU4Rec log summary reads the metrics GRU4Rec prints and aggregates runs."""

from __future__ import annotations

from pathlib import Path

from bench.gru4rec.summary import parse_log, summarise


def test_parse_and_summarise(tmp_path: Path) -> None:
    assert parse_log("Recall@20: 0.5 MRR@20: 0.25\nRecall@20: 0.6 MRR@20: 0.3") == {"recall@20": 0.6, "mrr@20": 0.3}
    for run, value in enumerate((0.5, 0.7), start=1):
        (tmp_path / f"xe.run{run}.log").write_text(f"Recall@20: {value} MRR@20: 0.2\n")
    table = summarise(sorted(tmp_path.glob("*.log")))
    assert table["xe"]["recall@20"] == (0.6, 0.5, 0.7, 2)
