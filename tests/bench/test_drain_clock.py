"""The drain-clock tool's parts that need no broker: faust's Ready line and the rate counted from it."""

from __future__ import annotations

import datetime
from pathlib import Path

from bench.drain_clock import rate_from_ready, ready_at_ms, render
from bench.runs import DrainResult

LOG = """\
2026-11-30 09:21:04,101 INFO streams.worker.main: model untrained-ec7dbf0a4ae9919f loaded
[2026-11-30 09:21:05,000] [4242] [INFO] [^---Recovery]: Worker ready
[2026-11-30 09:21:05,250] [4242] [INFO] [^Worker]: Ready
[2026-11-30 09:21:40,000] [4242] [INFO] [^Worker]: Ready
"""


def _local_ms(text: str) -> float:
    return datetime.datetime.strptime(text, "%Y-%m-%d %H:%M:%S,%f").astimezone().timestamp() * 1000


def test_the_first_ready_line_of_the_worker_counts_not_the_recovery_one() -> None:
    assert ready_at_ms(LOG) == _local_ms("2026-11-30 09:21:05,250")
    assert ready_at_ms("[2026-11-30 09:21:05,000] [4242] [INFO] [^---Recovery]: Worker ready\n") is None


def _result(tmp_path: Path, log: str, last_profile_ms: int) -> DrainResult:
    path = tmp_path / "worker.log"
    path.write_text(log)
    return DrainResult(
        variant="profilestream", events=90_000, seconds=30.0, events_per_s=3_000.0, cpu_s_per_1k=0.3,
        encoder_cpu_share=None, mean_batch_events=None, refold_share=None, peak_rss_bytes=0, profiles=0,
        profile_bytes_per_update=0.0, state_bytes_per_user=0.0, state_value_bytes_per_user=None, dead_letters=0,
        last_profile_ms=last_profile_ms, folded_total=100_000, log_path=path,
    )  # fmt: skip


def test_the_rate_from_ready_counts_every_event_over_the_longer_time(tmp_path: Path) -> None:
    ready = _local_ms("2026-11-30 09:21:05,250")
    result = _result(tmp_path, LOG, int(ready) + 40_000)
    assert rate_from_ready(result) == 100_000 / 40
    assert rate_from_ready(_result(tmp_path, "no ready line\n", int(ready) + 40_000)) is None


def test_the_table_shows_both_ratios() -> None:
    rows = [("profilestream", 3_000.0, 2_700.0), ("baseline", 1_000.0, 1_000.0)]
    text = render(rows, "516394b", "python -m bench.drain_clock --baseline 516394b")
    assert "| this tree ÷ `516394b` (medians) | 3.00x | 2.70x |" in text
