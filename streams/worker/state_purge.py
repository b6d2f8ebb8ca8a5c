"""Deleted users leave the worker's disk within the erasure bound: a periodic purge of the state databases.

An erasure or an expiry deletes a user's record from RocksDB, but the old value stays in the write-ahead log and
the SST files until RocksDB compacts them (:mod:`state.purge`). Every :func:`purge_interval_s` (half the erasure
bound) the worker looks at each partition database it holds open, its own and its standbys (whose deletes come
from the changelog), and purges those that hold tombstones: a flush and a full compaction, in a thread, while the
worker goes on. Nothing is purged where nothing was deleted, so a quiet worker does no work, and one that deletes
all the time compacts each partition at most once an interval. Partition databases left on disk longer than the
changelog keeps tombstones are dropped (:func:`drop_stale_stores`): at start, before faust opens anything, and in
every round for the databases this worker no longer holds (a partition a rebalance moved away: faust leaves its
files on disk, where users erased by the partition's new owner would stay, and would come back if the partition
returned after the changelog's tombstones are gone).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from state.purge import pending_deletes, purge_deleted
from streams.settings import Settings
from streams.worker.metrics import WorkerMetrics
from streams.worker.store_layout import partition_of

log = logging.getLogger(__name__)


def purge_interval_s(settings: Settings) -> float:
    """Seconds between purge rounds: half the erasure bound, so a deleted value is gone within the bound with
    the other half left for the purge itself and a worker restart."""
    return settings.erasure_bound_ms / 2 / 1000


FIRST_PURGE_AFTER_S = 60.0
"""A worker's first purge round comes this long after its start (or one interval, if that is shorter)."""


def first_purge_delay_s(settings: Settings) -> float:
    """Seconds from a worker's start to its first purge round. A timer's first round comes a whole interval after
    the start, so a worker restarted more often than that (rolling deploys, a crash loop) would never purge, and
    the deleted users of its databases would outlive the bound; a minute in, its partitions are usually open
    (one still restoring is purged at the next round)."""
    return min(purge_interval_s(settings), FIRST_PURGE_AFTER_S)


class StatePurger:
    """Purges the partition databases returned by ``databases`` that hold deleted records, and drops the ones
    on disk (``stores``) that are not held and older than ``stale_after_s``."""

    def __init__(
        self,
        databases: Callable[[], Mapping[int, Any]],
        metrics: WorkerMetrics,
        stores: Callable[[], list[Path]] = list,
        stale_after_s: float = float("inf"),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._databases = databases
        self._metrics = metrics
        self._stores = stores
        self._stale_after_s = stale_after_s
        self._clock = clock
        self._running = False
        self._failing: set[int] = set()

    async def run_once(self) -> int:
        """One round: drop stale databases no longer held, then purge every held database with tombstones;
        returns how many were purged.

        A failed purge (a full disk, a database closed by a rebalance meanwhile) is counted and logged, and the
        database is looked at again next round. Rounds never overlap.
        """
        if self._running:
            return 0
        self._running = True
        try:
            self.drop_released_stores()
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

    def drop_released_stores(self) -> list[Path]:
        """Drop the partition databases on disk that this worker does not hold and nobody touched for longer than
        the changelog keeps tombstones; returns them.

        Runs in the event loop with no await between the look at the held databases and the delete, so faust
        cannot open one of them meanwhile (it opens databases in the loop, when a partition is assigned).
        """
        held = set(self._databases())
        released = [store for store in self._stores() if partition_of(store) not in held]
        dropped = drop_stale_stores(released, self._stale_after_s, self._clock())
        for store in dropped:
            log.warning(
                "state partition database %s no longer held and untouched for more than %.0f s: dropped (if the "
                "partition comes back, faust restores it from the changelog)",
                store.name,
                self._stale_after_s,
            )
        return dropped

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
