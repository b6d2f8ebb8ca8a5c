"""What a user costs in RocksDB at defaults (issue 4's figure): N users with K events each, through the worker's code.

The events go through :class:`streams.worker.processor.BatchProcessor`, the worker's own batch logic (decoding, folding,
record codec, batched GRU), in batches of ``batch_max_events``; the records land in RocksDB databases opened with
faust's own ``RocksDBOptions`` and profilestream's table options, one per partition, laid out as faust lays out
a table (``v1/tables/user-state-<partition>.db``), and :func:`state.reader.store_stats` measures them. Kafka is
left out on purpose: it changes nothing in the records, and a real worker would spend most of the time publishing.

Each user's events come together (the ``blocks`` order), over about ``K * mean_gap_ms`` of the user's event time,
so every user ends with the same history and each record is written once. Two processes share the partitions.
"""

from __future__ import annotations

import multiprocessing
import shutil
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from bench.load import EventEncoder, LoadSpec, build_schedule
from state.reader import StoreStats, store_stats
from state.rocksdb_options import RocksDBTuning
from streams.settings import Settings
from streams.worker.encoder_runtime import EncoderRuntime
from streams.worker.faust_seam import faust_table_options
from streams.worker.metrics import WorkerMetrics
from streams.worker.processor import BatchProcessor, InboundMessage, StateAccess
from streams.worker.store_layout import OFFSET_KEY, TABLE_NAME, find_partition_stores, partition_of, table_dir

HOUR_MS = 3_600_000


def _faust_options() -> dict[str, Any]:
    return faust_table_options(RocksDBTuning())


class PartitionedRocksState:
    """:class:`streams.worker.processor.StateAccess` on one RocksDB database per partition, as faust opens them."""

    def __init__(self, datadir: Path, partitions: int, only: Callable[[int], bool] = lambda p: True) -> None:
        from faust.stores.rocksdb import RocksDBOptions

        tables = table_dir(datadir)
        tables.mkdir(parents=True, exist_ok=True)
        self.partitions = partitions
        # A fresh options dict per database: faust's RocksDBOptions pops keys from what it is given.
        self.dbs: dict[int, Any] = {
            p: RocksDBOptions(**_faust_options()).open(tables / f"{TABLE_NAME}-{p}.db")
            for p in range(partitions)
            if only(p)
        }

    def partition(self, key: bytes) -> int:
        """A stable partition of a key (any stable spread will do: sizes do not depend on which)."""
        return zlib.crc32(key) % self.partitions

    def load(self, user_id: str, message: InboundMessage) -> bytes | None:
        key = user_id.encode()
        value = self.dbs[self.partition(key)].get(key)
        return None if value is None else bytes(value)

    def store(self, user_id: str, message: InboundMessage, value: bytes) -> None:
        key = user_id.encode()
        self.dbs[self.partition(key)][key] = value

    def flush(self) -> None:
        """Write the memtables to SST files, as RocksDB does on its own once they fill."""
        for db in self.dbs.values():
            db.flush(True)

    def compact(self) -> None:
        """A full compaction: the steady state of a store that has run for a while."""
        for db in self.dbs.values():
            db.compact_range(None, None)

    def close(self) -> None:
        """Close every database."""
        for db in self.dbs.values():
            db.close()


@dataclass(frozen=True)
class StateSizeResult:
    """Bytes per user after the load, as flushed and after a full compaction."""

    users: int
    events_per_user: int
    seconds: float
    flushed: StoreStats
    compacted: StoreStats
    full_window_record_bytes: int
    """The encoded record of one user whose recent window is full (the largest a record gets at defaults)."""


def full_window_record_bytes(settings: Settings, *, mean_gap_ms: int = HOUR_MS) -> int:
    """Fold ``recent_window + 10`` events of one user through the worker's processor; the record's size."""
    spec = settings.state_spec()
    events = spec.recent_window + 10
    load = LoadSpec(1, events, user_order="blocks", mean_gap_ms=mean_gap_ms)
    runtime = EncoderRuntime.load(settings.model_dir, embedding_dim=settings.embedding_dim)
    processor = BatchProcessor(runtime, spec, WorkerMetrics(CollectorRegistry(), process_metrics=False))
    stored: dict[str, bytes] = {}

    class _Memory:
        def load(self, user_id: str, message: InboundMessage) -> bytes | None:
            return stored.get(user_id)

        def store(self, user_id: str, message: InboundMessage, value: bytes) -> None:
            stored[user_id] = value

    messages = [
        InboundMessage("bench", 0, i, k, v, t)
        for i, (t, k, v) in enumerate(EventEncoder(build_schedule(load)).messages())
    ]
    for message in messages:  # one event per batch: the record is rewritten as often as it can be
        _process(processor, [message], _Memory())
    return len(next(iter(stored.values())))


def _fold_share(
    users: int, events_per_user: int, mean_gap_ms: int, workdir: Path, settings: Settings, share: int
) -> None:
    """Child process: fold the events of the partitions ``p % processes == share`` and flush them to disk."""
    from models.threads import limit_threads

    limit_threads(settings.torch_threads)
    processes = settings.partitions if settings.partitions < 2 else 2
    spec = LoadSpec(users, users * events_per_user, user_order="blocks", mean_gap_ms=mean_gap_ms)
    runtime = EncoderRuntime.load(settings.model_dir, embedding_dim=settings.embedding_dim)
    metrics = WorkerMetrics(CollectorRegistry(), process_metrics=False)
    processor = BatchProcessor(runtime, settings.state_spec(), metrics)
    state = PartitionedRocksState(workdir, settings.partitions, only=lambda p: p % processes == share)
    try:
        batch: list[InboundMessage] = []
        for offset, (event_type, key, value) in enumerate(EventEncoder(build_schedule(spec)).messages()):
            partition = state.partition(key)
            if partition % processes != share:
                continue
            batch.append(InboundMessage("bench", partition, offset, key, value, event_type))
            if len(batch) == settings.batch_max_events:
                _process(processor, batch, state)
                batch = []
        if batch:
            _process(processor, batch, state)
        state.flush()
    finally:
        state.close()


def measure_state_size(
    users: int, events_per_user: int, workdir: Path, settings: Settings, *, mean_gap_ms: int = HOUR_MS
) -> StateSizeResult:
    """Fold ``users`` x ``events_per_user`` events through the worker's processor into RocksDB and measure it.

    Two child processes share the partitions (the machine has two cores and nothing else runs meanwhile).
    """
    if workdir.exists():
        shutil.rmtree(workdir)
    processes = settings.partitions if settings.partitions < 2 else 2
    context = multiprocessing.get_context("spawn")
    started = time.perf_counter()
    children = [
        context.Process(target=_fold_share, args=(users, events_per_user, mean_gap_ms, workdir, settings, share))
        for share in range(processes)
    ]
    for child in children:
        child.start()
    for child in children:
        child.join()
    if any(child.exitcode != 0 for child in children):
        raise RuntimeError("folding the state-size load failed (see the output above)")
    seconds = time.perf_counter() - started
    stores = find_partition_stores(table_dir(workdir), TABLE_NAME)
    flushed = store_stats(stores, skip_keys=frozenset({OFFSET_KEY}), partition_of=partition_of)
    state = PartitionedRocksState(workdir, settings.partitions)
    try:
        state.compact()
        state.flush()
    finally:
        state.close()
    compacted = store_stats(stores, skip_keys=frozenset({OFFSET_KEY}), partition_of=partition_of)
    full = full_window_record_bytes(settings, mean_gap_ms=mean_gap_ms)
    return StateSizeResult(users, events_per_user, seconds, flushed, compacted, full)


def _process(processor: BatchProcessor, batch: list[InboundMessage], state: StateAccess) -> None:
    output = processor.process(batch, state)
    if output.dead_letters:
        first = output.dead_letters[0]
        raise RuntimeError(f"{len(output.dead_letters)} events rejected, e.g. {first.reason.value}: {first.detail}")
