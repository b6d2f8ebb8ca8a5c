"""JSON views for the inspect and stats commands."""

from __future__ import annotations

import json
import random
from pathlib import Path

from state.describe import describe_record, describe_stats
from state.events import StateEvent
from state.reader import PartitionStats, StoreStats
from tests.state.strategies import DEFAULT_SPEC, T0_MS, fold_all, realistic_user


def test_describe_record_is_json_with_hex_hashes() -> None:
    record = realistic_user(random.Random(5))
    view = describe_record(record, DEFAULT_SPEC)
    assert json.loads(json.dumps(view)) == view
    assert view["event_count"] == 20 and view["hidden_dim"] == 64
    recent = view["recent"]
    assert isinstance(recent, list) and len(recent) == 20


def test_describe_event_leaves_out_absent_fields() -> None:
    record = fold_all([StateEvent(-1, 1, T0_MS, query_terms=(5,))], DEFAULT_SPEC)
    recent = describe_record(record, DEFAULT_SPEC)["recent"]
    assert recent == [
        {"type": "search", "ts_ms": T0_MS, "event_id_hash": "ffffffffffffffff", "query_terms": ["0000000000000005"]}
    ]


def test_describe_stats() -> None:
    part = PartitionStats(2, Path("t-2.db"), 4, 40, 4000, 3000, 100, 3500, None)
    view = describe_stats(StoreStats((part,)))
    assert json.loads(json.dumps(view)) == view
    assert view["bytes_per_user"] == 875.0
    assert view["partitions"] == [
        {"partition": 2, "store": "t-2.db", "users": 4, "disk_bytes": 3500, "sst_bytes": 3000, "wal_bytes": 100,
         "value_bytes": 4000}
    ]  # fmt: skip
