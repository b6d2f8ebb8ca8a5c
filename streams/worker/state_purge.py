"""Deleted users leave the worker's disk within the erasure bound: a periodic purge of the state databases.

An erasure or an expiry deletes a user's record from RocksDB, but the old value stays in the write-ahead log and
the SST files until RocksDB compacts them (:mod:`state.purge`). Every :func:`purge_interval_s` (half the erasure
bound) the worker looks at each partition database it holds open, its own and its standbys (whose deletes come
from the changelog), and purges those that hold tombstones: a flush and a full compaction, in a thread, while the
worker goes on. Nothing is purged where nothing was deleted, so a quiet worker does no work, and one that deletes
all the time compacts each partition at most once an interval. At start, before faust opens anything, partition
databases left on disk longer than the changelog keeps tombstones are dropped (:func:`drop_stale_stores`).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from state.purge import pending_deletes, purge_deleted
from streams.settings import Settings
from streams.worker.metrics import WorkerMetrics

log = logging.getLogger(__name__)


def purge_interval_s(settings: Settings) -> float:
    """Seconds between purge rounds: half the erasure bound, so a deleted value is gone within the bound with
    the other half left for the purge itself and a worker restart."""
    return settings.erasure_bound_ms / 2 / 1000


class StatePurger:
    """Purges the partition databases returned by ``databases`` that hold deleted records."""

    def __init__(self, databases: Callable[[], Mapping[int, Any]], metrics: WorkerMetrics) -> None:
        self._databases = databases
        self._metrics = metrics
        self._running = False
        self._failing: set[int] = set()

    async def run_once(self) -> int:
        """One round: purge every database with tombstones; returns how many were purged.

        A failed purge (a full disk, a database closed by a rebalance meanwhile) is counted and logged, and the
        database is looked at again next round. Rounds never overlap.
        """
        if self._running:
            return 0
        self._running = True
        try:
            purged = 0
            databases = self._databases()
            # A partition no longer held is no longer this worker's to purge.
            self._failing &= set(databases)
            for partition, db in sorted(databases.items()):
                if await self._purge(partition, db):
                    purged += 1
            self._metrics.set_state_purge_failing(len(self._failing))
            return purged
        finally:
            self._running = False

    async def _purge(self, partition: int, db: Any) -> bool:
        try:
            if not await asyncio.to_thread(pending_deletes, db):
                return False
            result = await asyncio.to_thread(purge_deleted, db)
        except Exception:
            self._failing.add(partition)
            self._metrics.count_state_purge_failure()
            log.exception("purging deleted records of state partition %d failed; trying again next round", partition)
            return False
        self._failing.discard(partition)
        self._metrics.observe_state_purge(result.deletes, result.seconds)
        log.info(
            "state partition %d: %d deleted records purged from disk in %.2f s (SST files %d -> %d bytes)",
            partition, result.deletes, result.seconds, result.bytes_before, result.bytes_after,
        )  # fmt: skip
        return True


def stale_store_age_s(settings: Settings) -> float:
    """Age past which a partition database left on disk can no longer be caught up from the changelog: the
    changelog keeps a tombstone only ``delete.retention.ms`` (half the bound) after its first cleaning."""
    return settings.erasure_bound_ms / 2 / 1000


def drop_stale_stores(stores: list[Path], max_age_s: float, now_s: float) -> list[Path]:
    """Delete the partition databases in ``stores`` whose newest file is older than ``max_age_s``; returns them.

    faust reopens a partition database it finds on disk and replays the changelog from the offset the database
    recorded. If the database was left untouched longer than the changelog keeps tombstones (a worker down for
    a day, a partition that moved away and comes back), a user erased meanwhile has no tombstone left to
    replay and would come back from the old files. Run before faust starts: a dropped partition is restored
    whole from the changelog.
    """
    dropped: list[Path] = []
    for store in stores:
        files = [f for f in store.rglob("*") if f.is_file()]
        newest_s = max((f.stat().st_mtime for f in files), default=0.0)
        if now_s - newest_s > max_age_s:
            shutil.rmtree(store)
            dropped.append(store)
    return dropped
