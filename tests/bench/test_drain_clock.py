"""The drain-clock tool's parts that need no broker: faust's Ready line and the rate counted from it."""

from __future__ import annotations

import datetime

from bench.drain_clock import rate_from_ready, ready_at_ms, render

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


def test_the_rate_from_ready_counts_every_event_over_the_longer_time() -> None:
    ready = _local_ms("2026-11-30 09:21:05,250")
    assert rate_from_ready(LOG, int(ready) + 40_000, 100_000) == 100_000 / 40
    assert rate_from_ready("no ready line\n", int(ready) + 40_000, 100_000) is None


def test_the_table_shows_both_ratios() -> None:
    rows = [("profilestream", 3_000.0, 2_700.0), ("baseline", 1_000.0, 1_000.0)]
    text = render(rows, "516394b", "python -m bench.drain_clock --baseline 516394b")
    assert "| this tree ÷ `516394b` (medians) | 3.00x | 2.70x |" in text
