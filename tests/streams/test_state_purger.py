"""StatePurger on real RocksDB databases: only databases holding deletes are purged, each purge is counted, and a
failure is counted and logged without stopping the round."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any

import pytest
import rocksdict
from prometheus_client import CollectorRegistry

from state.rocksdb_options import RocksDBTuning, rocksdict_options
from streams.settings import load_settings
from streams.worker.metrics import WorkerMetrics
from streams.worker.state_purge import (
    FIRST_PURGE_AFTER_S,
    StatePurger,
    drop_stale_stores,
    first_purge_delay_s,
    purge_interval_s,
    stale_store_age_s,
)


def _db(path: Path) -> rocksdict.Rdict:
    return rocksdict.Rdict(str(path), rocksdict_options(RocksDBTuning()))


def test_purges_only_databases_with_deletes_and_counts_them(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry, process_metrics=False)
    quiet, erased = _db(tmp_path / "p0"), _db(tmp_path / "p1")
    quiet[b"user-a"] = b"v"
    erased[b"user-b"] = b"v"
    erased[b"user-c"] = b"v"
    del erased[b"user-b"]
    del erased[b"user-c"]
    purger = StatePurger(lambda: {0: quiet, 1: erased}, metrics)
    with caplog.at_level(logging.INFO):
        assert asyncio.run(purger.run_once()) == 1
        assert asyncio.run(purger.run_once()) == 0  # nothing deleted since
    assert registry.get_sample_value("profilestream_state_purges_total") == 1
    assert registry.get_sample_value("profilestream_state_purged_deletes_total") == 2
    assert registry.get_sample_value("profilestream_state_purge_seconds_count") == 1
    assert "state partition 1: 2 deleted records purged from disk" in caplog.text
    assert "user-" not in caplog.text
    quiet.close()
    erased.close()


def test_a_failed_purge_is_counted_and_the_round_goes_on(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry, process_metrics=False)
    closed = _db(tmp_path / "p0")
    closed.close()  # as a database closed by a rebalance meanwhile
    erased = _db(tmp_path / "p1")
    erased[b"user-b"] = b"v"
    del erased[b"user-b"]
    databases: dict[int, Any] = {0: closed, 1: erased}
    purger = StatePurger(lambda: databases, metrics)
    assert asyncio.run(purger.run_once()) == 1
    assert registry.get_sample_value("profilestream_state_purge_failures_total") == 1
    assert registry.get_sample_value("profilestream_state_purge_failing_partitions") == 1
    # Once the broken database is no longer held (a rebalance took it), nothing is failing any more.
    del databases[0]
    asyncio.run(purger.run_once())
    assert registry.get_sample_value("profilestream_state_purge_failing_partitions") == 0
    erased.close()


def test_the_interval_is_half_the_erasure_bound() -> None:
    assert purge_interval_s(load_settings(erasure_bound_ms=6000)) == 3.0
    assert purge_interval_s(load_settings(erasure_bound_ms=24 * 3600 * 1000)) == 12 * 3600


def test_the_first_round_comes_a_minute_after_the_start_or_one_interval_if_shorter() -> None:
    # The default bound (a day) puts rounds 12 h apart: a worker restarted more often must still purge.
    assert first_purge_delay_s(load_settings()) == FIRST_PURGE_AFTER_S == 60.0
    assert first_purge_delay_s(load_settings(erasure_bound_ms=6_000)) == 3.0


def test_partition_databases_older_than_the_tombstones_are_dropped_before_faust_opens_them(tmp_path: Path) -> None:
    now_s = 1_800_000_000.0
    fresh, stale = tmp_path / "user-state-0.db", tmp_path / "user-state-1.db"
    for store in (fresh, stale):
        db = _db(store)
        db[b"user-a"] = b"v"
        db.close()
    for store, age_s in ((fresh, 100.0), (stale, 5000.0)):
        for f in store.rglob("*"):
            os.utime(f, (now_s - age_s, now_s - age_s))
    assert drop_stale_stores([fresh, stale], max_age_s=3000.0, now_s=now_s) == [stale]
    assert fresh.is_dir()
    assert not stale.exists()
    assert stale_store_age_s(load_settings(erasure_bound_ms=6000)) == 3.0


def test_a_running_worker_drops_stale_databases_it_no_longer_holds(tmp_path: Path) -> None:
    """A partition a rebalance moved away keeps its files on this worker's disk; once older than the changelog
    keeps tombstones they go, while a held database, however old, and a recently released one stay."""
    now_s = 1_800_000_000.0
    held_old, released_old, released_new = (tmp_path / f"user-state-{n}.db" for n in (0, 1, 2))
    for store in (held_old, released_old, released_new):
        db = _db(store)
        db[b"user-a"] = b"v"
        db.close()
    for store, age_s in ((held_old, 5000.0), (released_old, 5000.0), (released_new, 100.0)):
        for f in store.rglob("*"):
            os.utime(f, (now_s - age_s, now_s - age_s))
    held = _db(held_old)
    metrics = WorkerMetrics(CollectorRegistry(), process_metrics=False)
    purger = StatePurger(
        lambda: {0: held},
        metrics,
        stores=lambda: sorted(tmp_path.glob("user-state-*.db")),
        stale_after_s=3000.0,
        clock=lambda: now_s,
    )
    assert asyncio.run(purger.run_once()) == 0
    assert not released_old.exists()
    assert held_old.is_dir() and released_new.is_dir()
    assert held[b"user-a"] == b"v"
    held.close()
