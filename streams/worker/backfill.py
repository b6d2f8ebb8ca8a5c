"""Backfill: fold a history file into the worker's state table and the profile topic before the workers start.

``profilestream backfill --events FILE`` reads contract-v1 JSON lines through the one decoder, groups them per
user (a repeated ``event_id`` of a user is dropped, as the worker drops it), and folds each user's history with
the worker's own :class:`streams.worker.processor.BatchProcessor`: the same fold, the same batched encoder call,
the same state codec and profile builder, only with far larger batches and none of Faust's per-message cost.
It writes, per user:

- the state record to the table's changelog topic ``<app_id>-user-state-changelog``, in the partition the worker's
  table uses for the user (Kafka's default murmur2 partitioner over the table's partition count): a worker that
  starts afterwards restores it from there (faust's recovery), like after a lost disk;
- the profile to ``profiles.updated``, partitioned as the worker publishes it, so consumers see every user at once.

Which events a backfill covers, and why the worker does not fold them twice: the history in the file is history
that never goes to the input topics. Its records keep no input position (``UserState.positions`` stay -1), so
the worker's offset dedupe treats every event of the input topics as new, and it simply continues with the new
events. Should some history also be sent to the input topics (an overlap at the cut-over), the worker's existing
dedupe catches it: an event within the allowed lateness of the user's newest event is dropped by its
``event_id`` (exactly, for the last ``recent_window + dedupe_ids`` events of a user); an older one is
dead-lettered as ``too_late``. Producers start sending at the cut-over point.

Safety: the backfill refuses to run when the worker group has members, or has committed input offsets (a worker
ran: its changelog holds live state a backfill would replace), the latter unless ``force`` is given. Before a worker's
first start it is idempotent: a re-run writes the very same records (version 1 of each user's profile and
state), so the restored state is the same. Users whose history is idle longer than the TTL, judged at the
file's newest event, are not written: the worker's expiry would delete them at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from kafka.admin import KafkaAdminClient
from kafka.errors import CoordinatorNotAvailableError, TopicAlreadyExistsError
from prometheus_client import CollectorRegistry

from models.threads import limit_threads
from state.codec import peek_activity
from state.expiry import is_idle
from state.spec import StateSpec
from streams.client.admin import partition_counts
from streams.client.erasure_bound import compaction_configs
from streams.client.security import kafka_client_options
from streams.contract.events import EVENT_TYPES, Event
from streams.contract.topics import PROFILES, input_topic, state_changelog
from streams.offline.histories import ReadReport, read_events
from streams.settings import Settings
from streams.worker.app import BATCH_BYTES
from streams.worker.bulk_producer import BulkProducer
from streams.worker.encoder_runtime import EncoderRuntime
from streams.worker.metrics import WorkerMetrics
from streams.worker.partitioner import partition_for_key
from streams.worker.processor import (
    NO_POSITION,
    BatchOutput,
    BatchProcessor,
    Decoded,
    InboundMessage,
    wall_clock_ms,
)

log = logging.getLogger(__name__)

DEFAULT_BATCH_EVENTS = 50_000
"""Events folded per encoder call: large batches are the backfill's whole advantage over the worker."""
COORDINATOR_TIMEOUT_S = 30.0


class BackfillRefusedError(RuntimeError):
    """The worker group is live, or has processed events: a backfill would overwrite its state."""


def changelog_topic(settings: Settings) -> str:
    """The worker table's changelog topic (faust names it ``<app_id>-<table>-changelog``, without the prefix)."""
    return state_changelog(settings.app_id)


@dataclass
class BackfillReport:
    """What a backfill read and wrote."""

    read: ReadReport = field(default_factory=ReadReport)
    users: int = 0
    written: int = 0
    idle_skipped: int = 0
    rejected: int = 0
    fold_seconds: float = 0.0
    seconds: float = 0.0

    @property
    def events_per_s(self) -> float:
        """Accepted events of the file per second of the whole run (reading, folding, writing)."""
        return self.read.events / self.seconds if self.seconds else 0.0

    def summary(self) -> str:
        """One line for the operator (counts only: no user ids, no event content)."""
        return (
            f"{self.read.summary()}; {self.users} users, {self.written} written, {self.idle_skipped} idle past "
            f"the TTL skipped, {self.rejected} events rejected by the fold; {self.seconds:.1f} s "
            f"({self.events_per_s:,.0f} events/s, folding {self.fold_seconds:.1f} s)"
        )


def check_group_idle(
    settings: Settings, *, allow_committed: bool = False, timeout_s: float = COORDINATOR_TIMEOUT_S
) -> None:
    """Raise :class:`BackfillRefusedError` when the worker group has members, or committed input offsets unless
    ``allow_committed``. Live members are always refused: a running worker never reads the changelog again, so
    a backfill under it would be replaced by its state, or replace it at its next restart, losing events."""
    admin = KafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap,
        client_id=f"{settings.app_id}-backfill",
        **kafka_client_options(settings),
    )
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                group = admin.describe_groups([settings.app_id]).get(settings.app_id) or {}
                break
            except CoordinatorNotAvailableError:
                # A cluster where no group has committed yet creates its offsets topic on this first request.
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        members = len(group.get("members") or [])
        if members:
            raise BackfillRefusedError(
                f"the worker group {settings.app_id} has {members} live members (state {group.get('group_state')}); "
                "stop the workers first (--force does not override this)"
            )
        if allow_committed:
            return
        inputs = {settings.topic(input_topic(t)) for t in EVENT_TYPES}
        committed = admin.list_group_offsets({settings.app_id: None}).get(settings.app_id) or {}
        if any(tp.topic in inputs for tp in committed):
            raise BackfillRefusedError(
                f"the worker group {settings.app_id} has committed input offsets: a worker ran and its changelog "
                "holds live state that a backfill would replace; pass --force to write anyway"
            )
    finally:
        admin.close()


def ensure_changelog(settings: Settings) -> str:
    """Create the table's changelog topic as faust would (compacted, the table's partitions); check an existing
    one has the table's partition count. Returns its name. Raises RuntimeError, before creating anything, when
    the profile topic does not exist (the admin step has not run: nothing could be published), or when an input
    topic does not have ``settings.partitions`` partitions (the workers would fail at start, or look for the
    backfilled users in other partitions)."""
    topic = changelog_topic(settings)
    admin = KafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap,
        client_id=f"{settings.app_id}-backfill",
        **kafka_client_options(settings),
    )
    try:
        profiles_topic = settings.topic(PROFILES)
        inputs = [settings.topic(input_topic(t)) for t in EVENT_TYPES]
        counts = partition_counts(admin, [profiles_topic, *inputs, topic])
        if profiles_topic not in counts:
            raise RuntimeError(f"topic {profiles_topic} does not exist: run `profilestream topics create` first")
        for name in inputs:
            if counts.get(name, settings.partitions) != settings.partitions:
                raise RuntimeError(
                    f"{name} has {counts[name]} partitions, --partitions says {settings.partitions}: "
                    "give the backfill the workers' partition count"
                )
        if topic not in counts:
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(
                    {
                        topic: {
                            "num_partitions": settings.partitions,
                            "replication_factor": settings.replication_factor,
                            "configs": compaction_configs(settings),
                        }
                    },
                    wait_for_metadata=True,
                )
            counts = partition_counts(admin, [topic])  # made here, or by someone else meanwhile
        if counts[topic] != settings.partitions:
            raise RuntimeError(
                f"{topic} has {counts[topic]} partitions, the table {settings.partitions}: a worker "
                "would look for its users elsewhere"
            )
    finally:
        admin.close()
    return topic


def user_batches(events: Iterable[Event], batch_events: int, report: ReadReport) -> Iterator[list[Event]]:
    """Every user's events, duplicates of an event id dropped, cut into batches of whole users."""
    per_user: dict[str, dict[str, Event]] = {}
    for event in events:
        seen = per_user.setdefault(event.user_id, {})
        if event.event_id in seen:
            report.duplicates += 1
            continue
        seen[event.event_id] = event
    batch: list[Event] = []
    for user in sorted(per_user):
        history = list(per_user.pop(user).values())
        if batch and len(batch) + len(history) > batch_events:
            yield batch
            batch = []
        batch.extend(history)
    if batch:
        yield batch


class _NewUsers:
    """The processor's StateAccess for a backfill: every user starts empty; records are collected."""

    def __init__(self) -> None:
        self.records: dict[str, bytes] = {}

    def load(self, user_id: str, message: InboundMessage) -> bytes | None:
        return None

    def store(self, user_id: str, message: InboundMessage, value: bytes) -> None:
        self.records[user_id] = value


class HistoryFolder:
    """The worker's processor over whole user histories: records and profiles, as the worker would write them."""

    def __init__(
        self, encoder: EncoderRuntime, spec: StateSpec, partitions: int, clock_ms: Callable[[], int] = wall_clock_ms
    ) -> None:
        self.spec = spec
        self.partitions = partitions
        metrics = WorkerMetrics(CollectorRegistry(), process_metrics=False)
        self.processor = BatchProcessor(encoder, spec, metrics, clock_ms=clock_ms)

    def fold(self, events: list[Event], output: BatchOutput) -> dict[str, bytes]:
        """Fold a batch of whole user histories; returns each user's encoded record (profiles go to ``output``)."""
        decoded = []
        for event in events:
            key = event.user_id.encode()
            # No input position: these events never were on an input topic, so the record's positions stay -1
            # and the worker's offset dedupe takes every later input event as new.
            message = InboundMessage(
                topic=input_topic(event.type),
                partition=partition_for_key(key, self.partitions),
                offset=NO_POSITION,
                key=key,
                value=None,
                topic_type=event.type,
            )
            decoded.append(Decoded(event, message))
        state = _NewUsers()
        self.processor.fold(decoded, state, output, consumed=len(decoded))
        return state.records


FoldedBatch = tuple[dict[str, bytes], list[tuple[bytes, bytes]], int]
"""One folded batch: each user's encoded record, the profiles (key, value) and the events the fold rejected."""

_PROCESS_FOLDER: dict[str, HistoryFolder] = {}
"""The folder of a fold process, set by :func:`_start_fold_process`."""


def _start_fold_process(encoder: EncoderRuntime, spec: StateSpec, partitions: int) -> None:
    # Each process one thread of torch and BLAS: the processes are the parallelism.
    limit_threads(1)
    _PROCESS_FOLDER["folder"] = HistoryFolder(encoder, spec, partitions)


def _fold_in_process(batch: list[Event]) -> FoldedBatch:
    return _fold(_PROCESS_FOLDER["folder"], batch)


def _fold(folder: HistoryFolder, batch: list[Event]) -> FoldedBatch:
    output = BatchOutput()
    records = folder.fold(batch, output)
    return records, output.profiles, len(output.dead_letters)


def fold_batches(
    batches: Iterable[list[Event]], encoder: EncoderRuntime, spec: StateSpec, partitions: int, processes: int = 1
) -> Iterator[FoldedBatch]:
    """Fold batches of whole users, in order; with ``processes`` > 1 in that many processes at once (the fold is
    Python and holds the interpreter lock, so threads would not help). The results do not depend on it."""
    if processes <= 1:
        folder = HistoryFolder(encoder, spec, partitions)
        for batch in batches:
            yield _fold(folder, batch)
        return
    # fork: the children inherit the loaded modules; they touch neither the event loop nor the producer.
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(processes, context, _start_fold_process, (encoder, spec, partitions)) as pool:
        pending: deque[Future[FoldedBatch]] = deque()
        for batch in batches:
            pending.append(pool.submit(_fold_in_process, batch))
            # A few batches ahead of the writer, not the whole file: bounded memory.
            if len(pending) > processes:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def run_backfill(
    settings: Settings,
    events_file: Path,
    encoder: EncoderRuntime,
    *,
    force: bool = False,
    batch_events: int = DEFAULT_BATCH_EVENTS,
    progress: bool = False,
    processes: int = 1,
) -> BackfillReport:
    """Fold ``events_file`` and write changelog records and profiles; see the module docstring."""
    started = time.perf_counter()
    check_group_idle(settings, allow_committed=force)
    report = BackfillReport()
    changelog = ensure_changelog(settings)
    asyncio.run(
        _fold_and_write(
            settings,
            events_file,
            encoder,
            changelog=changelog,
            batch_events=batch_events,
            progress=progress,
            processes=processes,
            report=report,
        )
    )
    report.seconds = time.perf_counter() - started
    return report


async def _fold_and_write(
    settings: Settings,
    events_file: Path,
    encoder: EncoderRuntime,
    *,
    changelog: str,
    batch_events: int,
    progress: bool,
    processes: int,
    report: BackfillReport,
) -> None:
    spec = settings.state_spec()
    profiles_topic = settings.topic(PROFILES)
    # aiokafka builds record batches in C (kafka-python checksums them in pure Python without the crc32c
    # package), and the worker's BulkProducer writes whole batches per partition and waits for the acks.
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        client_id=f"{settings.app_id}-backfill",
        acks="all",
        enable_idempotence=True,
        linger_ms=0,
        max_batch_size=BATCH_BYTES,
        **kafka_client_options(settings),
    )
    await producer.start()
    try:
        bulk = BulkProducer(lambda: producer)
        await bulk.learn_partitions(profiles_topic)
        if not bulk.partition_count(profiles_topic):
            raise RuntimeError(f"topic {profiles_topic} does not exist: run `profilestream topics create` first")
        # The worker's clock check applies: a line dated far ahead would otherwise be the clock by which every
        # other user looks idle (and skipped), and its user's live events would all be too late.
        events = list(read_events(events_file, report.read, now_ms=wall_clock_ms()))
        watermark_ms = max((e.ts_ms for e in events), default=0)
        bar = _progress_bar(len(events), progress)
        folded = fold_batches(user_batches(events, batch_events, report.read), encoder, spec, settings.partitions,
                              processes)  # fmt: skip
        while True:
            fold_started = time.perf_counter()
            result = next(folded, None)
            # With fold processes, the time waited for the next folded batch.
            report.fold_seconds += time.perf_counter() - fold_started
            if result is None:
                break
            records, profiles, rejected = result
            report.rejected += rejected
            report.users += len(records)
            written: list[tuple[bytes, bytes]] = []
            for key, value in profiles:
                raw = records[key.decode()]
                count, last_ms = peek_activity(raw)
                if is_idle(count, last_ms, watermark_ms, spec):
                    report.idle_skipped += 1
                    continue
                # The table's partition of the user, as the worker's state access writes it.
                bulk.stage(changelog, partition_for_key(key, settings.partitions), key, raw)
                written.append((key, value))
            # State first, profiles once it is acknowledged, as the worker does: a failure in between leaves
            # state without a profile (the next run or event publishes it), never a profile without its state.
            await bulk.publish()
            for key, value in written:
                bulk.stage(profiles_topic, bulk.partition_of(profiles_topic, key), key, value)
            # Every record of the batch acknowledged before the next folds: bounded memory, early errors.
            await bulk.publish()
            report.written += len(written)
            bar.update(sum(peek_activity(raw)[0] for raw in records.values()))
        bar.close()
    finally:
        await producer.stop()


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(total: int, enabled: bool) -> Any:
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, unit="events", unit_scale=True, desc="backfill")
