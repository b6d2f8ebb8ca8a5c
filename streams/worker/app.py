"""The Faust worker: one fold loop over the three input topics, a RocksDB-backed user-state table, and publishing.

The worker's consumer hands it each poll result of the input topics as one list
(:class:`streams.worker.faust_seam.InputBatchConsumer`, past faust's per-message path); the fold loop decodes it at
once and queues the valid events in an :class:`streams.worker.alignment.EventTimeAligner`, which releases them in
event-time order across the three co-partitioned topics, at most ``batch_max_events`` at a time. Each released
batch is one unit of work: fold and encode (:class:`streams.worker.processor.BatchProcessor`), publish changelog
records and dead letters and wait for the broker's acknowledgement, write the local store
(:class:`streams.worker.state_table.FaustStateAccess`), publish the profiles and wait again, and only then
acknowledge the input messages, so Kafka's committed offsets never pass an event that is not folded or
dead-lettered, and no profile is out before the state that made it is durable.

No faust stream sees the input messages, so only the worker acknowledges them: an offset becomes committable when
its unit of work is durable, and no offset is skipped unless the broker confirms the hole
(:mod:`streams.worker.continuity`).

Infrastructure faults (the broker away, a full disk) pause the unit and retry it with backoff; they never turn
events into dead letters. A second agent serves erasure requests, and a timer expires users idle longer than
the TTL in event time; both go through the same unit-of-work discipline under one lock.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import faust
from aiokafka.errors import IllegalStateError
from faust.types import TP

from state.codec import decode_state, encode_state, peek_activity, peek_head
from state.errors import StateDecodeError
from state.expiry import is_idle
from state.record import UserState
from state.spec import StateSpec
from streams.client.erasure_bound import compaction_configs
from streams.client.secret_files import SecretConfigError
from streams.client.security import kafka_client_options
from streams.contract.events import EVENT_TYPES
from streams.contract.topics import DEADLETTER, ERASURE, PROFILES, input_topic
from streams.settings import Settings
from streams.worker.alignment import BrokerAbsence, EventTimeAligner, Held, Progress, partition_progress
from streams.worker.broker_auth import broker_credentials
from streams.worker.bulk_producer import BulkProducer, DeliveryError
from streams.worker.continuity import ContinuityCheck, Verdict
from streams.worker.dead_letters import dead_letter_record
from streams.worker.encoder_runtime import EncoderRuntime
from streams.worker.erasure import check_erasure
from streams.worker.faust_seam import (
    accept_gap,
    commit_through,
    fetched_at_ms,
    is_current_generation,
    kafka_producer,
    register_store,
    register_transport,
    release,
    seek,
    set_fetch_max_wait,
    subscribe,
    take_inputs,
)
from streams.worker.gc_tuning import is_tuned, sweep_frozen_heap
from streams.worker.lag_monitor import LagMonitor
from streams.worker.lookup import register_lookup
from streams.worker.metrics import InfraStage, WorkerMetrics
from streams.worker.partitioner import partition_for_key
from streams.worker.processor import (
    BatchOutput,
    BatchProcessor,
    DeadLetter,
    Decoded,
    InboundMessage,
    StateUnavailableError,
    wall_clock_ms,
)
from streams.worker.profile_builder import build_profile, current_records, is_current
from streams.worker.state_purge import StatePurger, first_purge_delay_s, purge_interval_s, stale_store_age_s
from streams.worker.state_table import FaustStateAccess
from streams.worker.store_layout import TABLE_NAME, worker_stores_on_disk
from streams.worker.web_auth import BearerToken

log = logging.getLogger(__name__)

LAG_REFRESH_S = 5.0
BATCH_BYTES = 512 * 1024
"""Upper bound of one Kafka record batch the worker produces (the broker takes up to 1 MiB by default)."""
EXPIRY_YIELD_EVERY = 2000
ALIGN_TICK_S = 0.05
"""How often held events are looked at again while no new batch arrives (idle partitions time out)."""
RETRY_FIRST_S = 0.1
ERASURE_CATCH_UP_POLL_S = 0.05
ERASURE_CATCH_UP_MAX_S = 600.0
"""Longest an erasure request waits for its partition's input backlog to be folded (a quarter of the erasure
bound if that is shorter); past it the request is executed anyway, and logged."""
REBUILD_TICK_S = 1.0
"""How often the background model rebuild takes its next share of users."""
REBUILD_MAX_LISTED = 100_000
"""Users of an old model listed per partition and scan (bounded memory; the next scan lists the rest)."""
RETRY_MAX_S = 5.0
PROBE_TIMEOUT_MS = 10_000
"""How long messages past a partition's missing offsets may keep coming before the seek back is asked again."""
PROGRESS_STALE_MS = 5_000
"""A partition counts as caught up only if a fetch answered for it this recently. The consumer's fetches answer
for every fetchable partition at least every 1.5 s (faust's ``fetch_max_wait_ms``), data or not."""
RECEIVE_SLICE = 2000
"""Messages of a poll result taken in (checked, decoded, queued for alignment) between two turns of the event
loop: the first poll of a backlog can hold a hundred thousand, seconds of decoding that would otherwise hold
lookups, health checks and timers up."""
INBOX_POLLS = 2
"""Poll results waiting for the fold loop; beyond them the consumer's fetch loop waits. A poll result can hold
up to a MiB per input partition (aiokafka's fetch size), so this bounds the worker's memory in a backlog."""


ANY_ADDRESS = frozenset({"", "0.0.0.0", "::"})  # noqa: S104 - the wildcard binds, named (binds nothing)


def advertised_web_host(settings: Settings) -> str:
    """The host name other workers use to reach this worker's web server: ``web_host`` if set, else the bind
    address when it is one address (a local run binds 127.0.0.1, which its other workers reach), else the
    machine's host name (faust's own default)."""
    if settings.web_host:
        return settings.web_host
    if settings.web_bind not in ANY_ADDRESS:
        return settings.web_bind
    return socket.gethostname()


def build_faust_app(settings: Settings) -> faust.App:
    """The Faust app of one worker: broker, RocksDB store, web server, and the settings the worker relies on."""

    app = faust.App(
        settings.app_id,
        # faust's aiokafka transport, with offset gaps of the input topics left to the worker (faust_seam).
        broker=[f"{register_transport()}://{server.strip()}" for server in settings.kafka_bootstrap.split(",")],
        # TLS and SASL of a secured cluster (None: plaintext); the same settings as every other client's.
        broker_credentials=broker_credentials(settings),
        store=register_store(compression=settings.state_compression),
        datadir=str(settings.state_dir),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        table_standby_replicas=settings.standby_replicas,
        consumer_auto_offset_reset="earliest",
        web_enabled=True,
        # faust's own views would serve raw state records (/table/...) and the worker map (/router/...) to anyone
        # who reaches the port. Table routing of the lookup does not need them: it forwards to the owner's URL,
        # which the consumer group's metadata carries.
        web_tables_enabled=False,
        web_router_enabled=False,
        web_bind=settings.web_bind,
        web_port=settings.web_port,
        # The lookup forwards a request for a user another worker owns to that worker's canonical URL, built from
        # this host name: faust's default, the machine's host name, need not resolve where the others run.
        web_host=advertised_web_host(settings),
        stream_recovery_delay=settings.rebalance_settle_s,
        broker_commit_interval=settings.commit_interval_s,
        broker_session_timeout=settings.consumer_session_timeout_s,
        # faust's default of 3 s must stay well under a third of a short session timeout.
        broker_heartbeat_interval=min(3.0, settings.consumer_session_timeout_s / 4),
        # Held (aligned) events stay unacknowledged on purpose; a rebalance must not wait for them. The
        # revocation handler waits for the unit in flight instead, and dropped events are delivered again.
        stream_wait_empty=False,
        # Records leave in batches the worker builds itself (BulkProducer): waiting for more only adds latency.
        producer_linger_ms=0,
        # Room for a micro-batch's records of one partition in a few record batches (see BulkProducer).
        producer_max_batch_size=BATCH_BYTES,
    )
    # How long the broker may hold a fetch that finds nothing new, idle and while inputs are buffered (faust fixes it).
    set_fetch_max_wait(
        app, settings.consumer_fetch_max_wait_ms, busy_milliseconds=settings.consumer_fetch_wait_while_busy_ms
    )
    # faust also reads APP_* variables, which override the arguments above: APP_WEB_TABLES_ENABLED=true would
    # serve raw state records to anyone who reaches the port. Refuse rather than start open.
    opened = [name for name in OPEN_VIEWS if getattr(app.conf, name)]
    if opened:
        raise WebViewsOpenError(
            f"faust's views {', '.join(opened)} are on (an APP_* variable in the environment?): they would serve "
            "raw state records or the worker map to anyone; unset them"
        )
    return app


OPEN_VIEWS = (
    "web_tables_enabled",
    "web_router_enabled",
    "web_stats_enabled",
    "web_graph_enabled",
    "web_metrics_enabled",
    "debug",
)
"""faust settings that add views beyond the lookup: raw state records, the worker map, sensor stats and the
partition assignment, the service graph, faust's own metrics page, the debug pages (each its own switch)."""


class WebViewsOpenError(SecretConfigError):
    """faust's own web views were turned on from the environment; the worker refuses to start open (reported
    like a secret setting that cannot be used: one line, the configuration's exit code)."""


class ProfileWorker:
    """Builds the Faust app, its topics, table and agent for one configuration."""

    def __init__(
        self,
        settings: Settings,
        encoder: EncoderRuntime,
        metrics: WorkerMetrics,
        spec: StateSpec,
        processor: BatchProcessor,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        # The processor is given (the benchmarks run other batch designs in the very same worker).
        self.processor = processor
        partitions = settings.partitions
        self.processor.partition_for_key = lambda key: partition_for_key(key, partitions)
        self.app = build_faust_app(settings)
        self._topic_types = {settings.topic(input_topic(t)): t for t in EVENT_TYPES}
        # Subscribed without a stream: the consumer hands poll results to the fold loop (faust_seam.take_inputs).
        self.inputs = self.app.topic(*self._topic_types, key_serializer="raw", value_serializer="raw")
        subscribe(self.app, self.inputs)
        self._inbox: asyncio.Queue[list[Any]] = asyncio.Queue(maxsize=INBOX_POLLS)
        self.table = self.app.Table(
            TABLE_NAME,
            partitions=settings.partitions,
            key_type=bytes,
            value_type=bytes,
            default=None,
            # The changelog holds every user's state: compacted within the erasure bound like the profiles.
            extra_topic_configs=compaction_configs(settings),
        )
        self.erasure = self.app.topic(settings.topic(ERASURE), key_serializer="raw", value_serializer="raw")
        self.spec = spec
        # State changelog records, profiles and dead letters leave in record batches (streams.worker.bulk_producer).
        self.bulk = BulkProducer(
            self._kafka_producer, on_failed=lambda _topic, _partition, count: metrics.count_publish_failures(count)
        )
        self.state = FaustStateAccess(self.table, self.bulk)
        self.aligner: EventTimeAligner[Decoded | DeadLetter] = EventTimeAligner(
            list(self._topic_types),
            settings.align_max_idle_ms,
            settings.align_max_queued,
            max_lag_wait_ms=settings.align_max_lag_wait_ms,
            # Within the allowed lateness nothing an idle topic receives next can be refused: no need to wait.
            max_ahead_ms=settings.allowed_lateness_ms,
        )
        self._profiles_topic = settings.topic(PROFILES)
        self._deadletter_topic = settings.topic(DEADLETTER)
        self._processed: dict[tuple[str, int], int] = {}
        self._start_positions: dict[tuple[str, int], int] = {}
        self._start_hints: asyncio.Future[None] | None = None
        self._watermarks_ms: dict[int, int] = {}
        self._owned: set[int] = set()
        self._paused: set[tuple[str, int]] = set()
        # No input offset is skipped unless the broker confirms the hole (streams.worker.continuity).
        self.continuity = ContinuityCheck()
        self._stale: dict[int, list[bytes]] = {}
        """Per owned partition: users the last scan found made by another model version, for the rebuild."""
        # One unit of work at a time: a fold batch, an erasure or an expiry sweep of one partition.
        self._unit_lock = asyncio.Lock()
        self.app.task(self._fold_inbox)
        self.app.agent(self.erasure, name="erase-users", concurrency=1)(self._erase_users)
        self.app.timer(LAG_REFRESH_S)(self._refresh_lag)
        self.app.timer(settings.expiry_interval_s)(self._expire_idle_users)
        self.app.timer(REBUILD_TICK_S)(self._rebuild_old_users)
        self.app.timer(settings.gc_sweep_interval_s)(self._sweep_heap)
        # Deleted users (erasure, expiry) leave the state files within the erasure bound (streams.worker.state_purge).
        self.purger = StatePurger(
            self.state.local_partitions,
            metrics,
            stores=lambda: worker_stores_on_disk(settings.state_dir),
            stale_after_s=stale_store_age_s(settings),
        )
        self.app.timer(purge_interval_s(settings))(self._purge_state)
        self.app.task(self._purge_after_start)
        self.app.on_partitions_assigned.connect(self._on_assigned)  # type: ignore[arg-type]
        self.app.on_partitions_revoked.connect(self._on_revoked)  # type: ignore[arg-type]
        self.lag_monitor = LagMonitor(
            settings.kafka_bootstrap, metrics, self._next_offset, client_options=kafka_client_options(settings)
        )
        self._monitored_ends: Mapping[tuple[str, int], int] = {}
        self._settling = False
        self.broker_absence = BrokerAbsence(PROGRESS_STALE_MS, settings.align_settle_after_outage_ms)
        self.app.on_before_shutdown.connect(self._stop_lag_monitor)  # type: ignore[arg-type]
        register_lookup(self.app, self.table, encoder, spec, BearerToken.from_settings(settings))
        metrics.set_model_version(encoder.model_version)

    def _partition_of(self, key: bytes) -> int:
        return partition_for_key(key, self.settings.partitions)

    def _kafka_producer(self) -> Any:
        return kafka_producer(self.app)

    def _inbound(self, msg: Any) -> InboundMessage:
        return InboundMessage(
            topic=msg.topic,
            partition=msg.partition,
            offset=msg.offset,
            key=msg.key,
            value=msg.value,
            topic_type=self._topic_types.get(msg.topic, "unknown"),
            token=msg,
        )

    # -- the fold loop --------------------------------------------------------------------------------------

    async def _fold_inbox(self) -> None:
        """The fold loop: receive poll results, release aligned events and run them as units of work.

        A fault this loop does not handle (the store's and the broker's are retried inside) stops the worker
        rather than the loop alone: a worker that consumes nothing while it looks alive is worse than a restart,
        which reads every unfinished event again.
        """
        try:
            while True:
                # While events are held, look again now and then: an idle partition's wait is bounded.
                timeout = ALIGN_TICK_S if self.aligner.held else None
                try:
                    messages = await asyncio.wait_for(self._inbox.get(), timeout)
                except TimeoutError:
                    messages = None
                if messages:
                    await self._receive(self._with_waiting_polls(messages))
                # A capped unit leaves releasable events behind: run them now, not at the next tick.
                while await self._process_released() >= self.settings.batch_max_events:
                    pass
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("the fold loop failed; stopping the worker (unfinished events are read again)")
            await self.app.crash(exc)

    def _with_waiting_polls(self, first: list[Any]) -> list[Any]:
        """``first`` and every poll result waiting behind it in the inbox, as one list.

        Under live traffic the consumer hands over small polls while a unit runs. Taken one unit each, their
        events wait behind each other's units, and the aligner holds back events of partitions whose newer
        records sit in the polls still queued (the highwater mark says more is there). Taking them all makes
        fewer, larger units (the per-event cost falls with the unit's size): in an A/B on one broker (paced load,
        two runs each) p50 freshness at 1,500 events/s went from 750-780 ms to 460-490 ms.
        """
        if self._inbox.empty():
            return first
        messages = list(first)
        while not self._inbox.empty():
            messages.extend(self._inbox.get_nowait())
        return messages

    async def _take_poll(self, messages: list[Any]) -> None:
        """The consumer's sink for poll results of the input topics (waits while the inbox is full)."""
        await self._inbox.put(messages)

    async def _receive(self, polled: list[Any]) -> None:
        """Decode a poll result as it arrives and queue it for alignment; nothing is acknowledged before its unit.

        Taken in slices of ``RECEIVE_SLICE`` messages with a turn of the event loop between them. A rebalance
        may run in such a turn: every message is checked against the partitions owned at its own slice, and
        what a revocation drops from the aligner is delivered again to the next owner, as without slices.
        """
        refetch: dict[tuple[str, int], int] = {}
        for first in range(0, len(polled), RECEIVE_SLICE):
            if first:
                await asyncio.sleep(0)
            await self._receive_slice(polled[first : first + RECEIVE_SLICE], refetch)
        for (topic, partition), offset in refetch.items():
            if partition not in self._owned:
                continue  # revoked between two slices: its next owner reads it from the committed offset
            # Messages past offsets that never arrived (a fetch that crossed faust's seek after a rebalance):
            # they are dropped unacknowledged and the partition is read again from the first missing offset.
            log.warning("a fetch of %s[%d] skipped offsets from %d on; reading them again", topic, partition, offset)
            self.metrics.count_offset_jump("refetched")
            await seek(self.app, topic, partition, offset)
        for (topic, partition), offset in self.continuity.overdue_probes(
            int(time.monotonic() * 1000), PROBE_TIMEOUT_MS
        ):
            # Still only messages past the missing offsets: the seek did not land. Never wait forever.
            log.warning("reading %s[%d] again from %d did not start yet; asking once more", topic, partition, offset)
            await seek(self.app, topic, partition, offset)

    async def _receive_slice(self, polled: list[Any], refetch: dict[tuple[str, int], int]) -> None:
        """Check, decode and queue for alignment one slice of a poll result; partitions to read again from a
        missing offset go to ``refetch``."""
        messages: list[InboundMessage] = []
        now_ms = int(time.monotonic() * 1000)
        for message in polled:
            # A message of a partition revoked meanwhile, or fetched before the last rebalance (the inbox may
            # still hold it), is never acknowledged: Kafka delivers it again from the committed offset, and
            # folding the stale copy first would make the earlier offsets look like redeliveries.
            if message.partition not in self._owned or not is_current_generation(self.app, message):
                continue
            tp = (message.topic, message.partition)
            expected = self.continuity.expected(tp)
            verdict = self.continuity.check(tp, message.offset, now_ms)
            if verdict is Verdict.PROBE and expected is not None:
                refetch[tp] = expected
                continue
            if verdict is Verdict.DROP:
                continue
            if verdict is Verdict.TAKE_AFTER_GAP and expected is not None:
                log.warning(
                    "offsets %d to %d of %s[%d] hold no message (the broker confirmed it); going on after them",
                    expected, message.offset - 1, *tp,
                )  # fmt: skip
                self.metrics.count_offset_jump("confirmed")
                await accept_gap(self.app, *tp, expected, message.offset - 1)
            messages.append(self._inbound(message))
        output = BatchOutput()
        decoded = self.processor.decode(messages, output)
        rejected = {id(letter.message): letter for letter in output.dead_letters}
        valid = {id(item.message): item for item in decoded}
        for message in messages:
            # Checked again: accept_gap above yields, and a revocation may have run meanwhile (its aligner queues
            # are dropped; a message added after that would wait there and be folded ahead of its redelivery).
            if message.partition not in self._owned or not is_current_generation(self.app, message.token):
                continue
            item: Decoded | DeadLetter
            if id(message) in valid:
                item = valid[id(message)]
                ts_ms = item.event.ts_ms
            else:
                item = rejected[id(message)]
                # A rejected message takes its place in its partition's order without holding anyone back.
                ts_ms = self.aligner.last_ts_ms(message.topic, message.partition) or 0
            self.aligner.add(Held(message.topic, message.partition, message.offset, ts_ms, item))
        self._apply_backpressure()

    def _apply_backpressure(self) -> None:
        pause, resume = self.aligner.over_limit()
        consumer = self.app.consumer
        to_pause = pause - self._paused
        to_resume = resume & self._paused
        if to_pause:
            consumer.pause_partitions([TP(t, p) for t, p in to_pause])
            self._paused |= to_pause
        if to_resume:
            consumer.resume_partitions([TP(t, p) for t, p in to_resume])
            self._paused -= to_resume

    def _progress(self, topic: str, partition: int, next_offset: int | None) -> Progress:
        # The consumer's highwater mark comes from its last fetch of that partition and goes stale while the
        # partition is not fetched (after an outage another topic may be fetched first); the lag monitor asks the
        # broker for end offsets every few seconds. The higher of the two decides: waiting too long is safe,
        # going on too early refuses events as too late.
        ends = [
            end
            for end in (self.app.consumer.highwater(TP(topic, partition)), self._monitored_ends.get((topic, partition)))
            if end is not None
        ]
        position = next_offset if next_offset is not None else self._start_positions.get((topic, partition))
        fetched_at = fetched_at_ms(self.app, topic, partition)
        age_ms = None if fetched_at is None else time.time() * 1000 - fetched_at
        return partition_progress(position, ends, age_ms, PROGRESS_STALE_MS, self._settling)

    async def _process_released(self) -> int:
        """Run the events the aligner releases now (at most ``batch_max_events``) as one unit; returns how many."""
        self._monitored_ends = self.lag_monitor.end_offsets
        self._settling = self.broker_absence.settling(time.time() * 1000)
        released = self.aligner.release(int(time.monotonic() * 1000), self._progress, self.settings.batch_max_events)
        self._apply_backpressure()
        self.metrics.set_events_held(self.aligner.held)
        if not released:
            return 0
        async with self._unit_lock:
            # A partition revoked while waiting for the lock: its events go to the next owner. One fetched before
            # the last rebalance is never folded, even if its partition came back: it is delivered again.
            kept = [h for h in released if h.partition in self._owned and self._current(h)]
            decoded = [h.item for h in kept if isinstance(h.item, Decoded)]
            output = BatchOutput(dead_letters=[h.item for h in kept if isinstance(h.item, DeadLetter)])
            await self._retry("store", lambda: self._fold(decoded, output, len(kept)), (StateUnavailableError,))
            await self._publish(output)
            for held in kept:
                message = held.item.message
                self._processed[(message.topic, message.partition)] = message.offset
            release(self.app, (held.item.message.token for held in kept))
            for partition, ts_ms in output.watermarks_ms.items():
                if ts_ms > self._watermarks_ms.get(partition, 0):
                    self._watermarks_ms[partition] = ts_ms
        return len(released)

    def _current(self, held: Held[Decoded | DeadLetter]) -> bool:
        return is_current_generation(self.app, held.item.message.token)

    async def _fold(self, decoded: list[Decoded], output: BatchOutput, consumed: int) -> None:
        """Fold and encode, letting the event loop run between slices of users (lookups, timers, the producer);
        on a store read failure nothing of the attempt survives, so it can run again."""
        before = len(output.dead_letters)
        try:
            for _ in self.processor.fold_in_slices(decoded, self.state, output, consumed=consumed):
                await asyncio.sleep(0)
        except StateUnavailableError:
            del output.dead_letters[before:]
            output.profiles.clear()
            output.event_times_ms.clear()
            output.watermarks_ms.clear()
            self.state.discard_pending()
            self.processor.forget()
            raise

    async def _retry(
        self, stage: InfraStage, attempt: Callable[[], Any], faults: tuple[type[BaseException], ...]
    ) -> Any:
        """Run ``attempt`` until it succeeds: an infrastructure fault (one of ``faults``) pauses the stream and is
        retried with backoff; it never drops or dead-letters events."""
        delay = RETRY_FIRST_S
        failures = 0
        while True:
            try:
                result = attempt()
                if asyncio.iscoroutine(result):
                    result = await result
                if failures:
                    log.warning("%s works again after %d failed attempts; processing resumes", stage, failures)
                    self.metrics.set_paused(False)
                return result
            except faults as exc:
                failures += 1
                self.metrics.count_infra_retry(stage)
                self.metrics.set_paused(True)
                # One line at the first failure and then every tenth: an outage must not flood the log.
                if failures == 1 or failures % 10 == 0:
                    log.error("%s failed (%d attempts so far), retrying in %.1f s: %r", stage, failures, delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)

    async def _publish(self, output: BatchOutput) -> None:
        """Changelog records and dead letters, acknowledged; the local store; then profiles, acknowledged.

        Profiles go last so that a profile version is never out before the state that made it is durable: after
        a crash between the two, the restored state is at least that version, redelivered events find it, and
        the processor publishes it again under a newer version (see ``BatchProcessor.fold``). Consumers never
        see a version twice, and no change of state goes without its profile. Dead letters go with the
        changelog: a redelivered event that was refused as too late is a duplicate once its position is stored.
        """
        self.state.stage_changelog()
        if output.dead_letters:
            await self.bulk.learn_partitions(self._deadletter_topic)
            count = self.bulk.partition_count(self._deadletter_topic)
            for letter in output.dead_letters:
                letter_key, letter_value, headers = dead_letter_record(letter)
                # Beside its source partition's number, so one user's dead letters stay together.
                self.bulk.stage(
                    self._deadletter_topic, letter.message.partition % count, letter_key, letter_value, headers=headers
                )
        delivered = await self._deliver()
        # rocksdict reports a failed write (a full disk, an I/O error) as a plain Exception.
        await self._retry("store", lambda: self.state.apply(delivered, self._owned.__contains__), (Exception,))
        if output.profiles:
            topic = self._profiles_topic
            await self.bulk.learn_partitions(topic)
            for key, value in output.profiles:
                self.bulk.stage(topic, self.bulk.partition_of(topic, key), key, value)
            await self._deliver()
            # Publication time: the broker has the profiles (after any retries the store or broker needed).
            self.metrics.observe_end_to_end_latency_ms(output.event_times_ms, wall_clock_ms())
        # Let the producer's sender and faust's commit run before the next unit holds the event loop.
        await asyncio.sleep(0)
        if output.profiles:
            self.metrics.count_published(len(output.profiles))
        if output.dead_letters:
            self.metrics.count_deadletter(len(output.dead_letters))

    async def _deliver(self) -> dict[tuple[str, int], int]:
        """Everything staged, acknowledged by the broker (retried while it is away); the last offset per partition."""
        delivered: dict[tuple[str, int], int] = {}

        async def publish() -> None:
            delivered.update(await self.bulk.publish())

        await self._retry("publish", publish, (DeliveryError,))
        return delivered

    # -- erasure and expiry ---------------------------------------------------------------------------------

    async def _erase_users(self, stream: Any) -> None:
        """Erasure requests (:mod:`streams.contract.erasure`): a valid one deletes the user's state (changelog,
        then store), if there is any, and publishes a tombstone either way; an invalid one is dead-lettered and
        nothing is deleted. The log names the request id, never the user.

        A user without state may still have a profile on the compacted topic (one published under an earlier app
        id, whose state this group never had): the tombstone is what erases it there."""
        async for event in stream.events():
            message = self._inbound(event.message)
            request = check_erasure(message, self._partition_of, wall_clock_ms())
            if not isinstance(request, DeadLetter) and not await self._caught_up_for_erasure(message.partition):
                log.warning(
                    "erasure request %s executed before partition %d's input backlog was folded; events of the "
                    "user still in that backlog will start a fresh profile",
                    request.request_id,
                    message.partition,
                )
            async with self._unit_lock:
                if isinstance(request, DeadLetter):
                    await self._publish(BatchOutput(dead_letters=[request]))
                    known = False
                else:
                    key = request.user_id.encode()
                    known = self.state.read(key, message.partition) is not None
                    # Whatever the store says, no cached copy of the user may outlive the request.
                    self.processor.forget([request.user_id])
                    if known:
                        await self._commit_before_deleting(message.partition)
                        self.state.delete(key, message.partition)
                    await self._stage_tombstones([key])
                    await self._publish(BatchOutput())
            if isinstance(request, DeadLetter):
                self.metrics.count_erasure_request("rejected")
                log.warning(
                    "erasure request at partition %d offset %d rejected (%s: %s); dead-lettered, nothing erased",
                    message.partition,
                    message.offset,
                    request.reason.value,
                    request.detail,
                )
            elif known:
                self.metrics.count_tombstones("erasure")
                self.metrics.count_erasure_request("executed")
                log.info("erasure request %s executed (reason %s)", request.request_id, request.reason)
            else:
                self.metrics.count_tombstones("erasure")
                self.metrics.count_erasure_request("unknown_user")
                log.info("erasure request %s: no state for the user; tombstone published", request.request_id)

    async def _caught_up_for_erasure(self, partition: int) -> bool:
        """Wait until every input event of ``partition`` appended before now is folded (or dead-lettered); False
        when it gave up: the broker did not answer, the partition went to another worker, or the wait passed
        `ERASURE_CATCH_UP_MAX_S` (a quarter of the erasure bound if shorter).

        The request was produced before now, so the user's events sent before it are all below these end
        offsets: folded first, they are deleted with the user. Executed at once, a request read while a backlog
        waits (a lagging worker, one restarted after an outage) deleted the user, and their older events still
        in the backlog then started a fresh profile. No user id is kept for it: the wait is per partition.
        """
        ends = await self.lag_monitor.fresh_end_offsets([(topic, partition) for topic in self._topic_types])
        if ends is None:
            return False
        limit_s = min(ERASURE_CATCH_UP_MAX_S, self.settings.erasure_bound_ms / 4000)
        deadline = time.monotonic() + limit_s
        while not self._folded_before(ends):
            if partition not in self._owned or time.monotonic() > deadline:
                return False
            await asyncio.sleep(ERASURE_CATCH_UP_POLL_S)
        return True

    def _folded_before(self, ends: Mapping[tuple[str, int], int]) -> bool:
        """Whether every offset below ``ends`` of each input partition is folded or dead-lettered."""
        for tp, end in ends.items():
            folded = self._processed.get(tp)
            if folded is None:
                # Nothing folded since the assignment: caught up only if it started at or past the end.
                start = self._start_positions.get(tp)
                if start is None or start < end:
                    return False
            elif folded + 1 < end:
                return False
        return True

    async def _commit_before_deleting(self, partition: int) -> None:
        """Commit the input offsets folded so far in ``partition``, before users of it are deleted.

        A user's record holds the input positions that tell a redelivered message from a new one; once it is
        deleted, events of the user folded since the last commit would, after a crash, be delivered again and
        folded as new: the erased (or expired) user would come back. Committed first, they are never delivered
        again. Called under the unit lock, so every folded unit's offsets are acknowledged already.
        """
        processed = {tp: offset for tp, offset in self._processed.items() if tp[1] == partition}
        if processed and not await commit_through(self.app, processed):
            log.warning(
                "partition %d: the input offsets folded before a deletion were not committed; after a crash before "
                "the next commit the deleted users' last events would be folded again",
                partition,
            )

    async def _expire_idle_users(self) -> None:
        """Delete users idle longer than the TTL, in event time, from the partitions this worker owns.

        Reads only each record's head, and yields to the event loop every few thousand records, so a scan over
        many users does not hold up the stream. A scan cut short (a rebalance closed a store) is retried at the
        next interval.
        """
        try:
            await self._expiry_scan()
        except Exception:
            log.exception("expiry scan interrupted; it runs again at the next interval")

    async def _expiry_scan(self) -> None:
        users = 0
        old_model = 0
        model_version = self.processor.encoder.model_version
        for partition in sorted(self._owned & set(self.state.local_partitions())):
            watermark_ms = self._watermarks_ms.get(partition)
            expired: list[bytes] = []
            stale: list[bytes] = []
            for n, (key, raw) in enumerate(self.state.records(partition), start=1):
                users += 1
                if n % EXPIRY_YIELD_EVERY == 0:
                    await asyncio.sleep(0)
                try:
                    event_count, last_event_ms, record_model = peek_head(raw)
                except StateDecodeError:
                    self.metrics.count_state_decode_errors()
                    continue
                if watermark_ms is not None and is_idle(event_count, last_event_ms, watermark_ms, self.spec):
                    expired.append(key)
                elif record_model != model_version:
                    stale.append(key)
            old_model += len(stale)
            # The background rebuild works through these; the next scan gives it a fresh list.
            self._stale[partition] = stale[:REBUILD_MAX_LISTED]
            if not expired:
                continue
            async with self._unit_lock:
                if partition not in self._owned:
                    continue
                # A user may have been active again while the scan yielded: look once more under the lock.
                expired = [key for key in expired if self._still_idle(key, partition, watermark_ms)]
                self.processor.forget(key.decode(errors="replace") for key in expired)
                await self._commit_before_deleting(partition)
                for key in expired:
                    self.state.delete(key, partition)
                await self._stage_tombstones(expired)
                await self._publish(BatchOutput())
            self.metrics.count_tombstones("expiry", len(expired))
            users -= len(expired)
            log.info("expired %d idle users in partition %d", len(expired), partition)
        self.metrics.set_users_in_state(users)
        self.metrics.set_users_old_model(old_model)
        if old_model:
            log.info("%d stored users of another model version than %s left to rebuild", old_model, model_version)

    async def _rebuild_old_users(self) -> None:
        """Re-encode, from their stored windows, users whose state another model version made: a model rollout
        completes for idle users too. At most ``model_rebuild_per_s`` users a second, as units of work (changelog,
        profiles, then the store) under the same lock as the fold; the scan above finds them and counts them."""
        budget = int(self.settings.model_rebuild_per_s * REBUILD_TICK_S)
        if budget <= 0 or not self._stale:
            return
        try:
            rebuilt = await self._rebuild_some(budget)
        except Exception:
            log.exception("background model rebuild interrupted; it goes on at the next tick")
            return
        if rebuilt:
            self.metrics.count_model_rebuilds(rebuilt)

    async def _rebuild_some(self, budget: int) -> int:
        encoder = self.processor.encoder
        async with self._unit_lock:
            picked: list[tuple[int, bytes]] = []
            for partition in sorted(self._stale):
                keys = self._stale[partition]
                while keys and partition in self._owned and len(picked) < budget:
                    picked.append((partition, keys.pop()))
                if not keys or partition not in self._owned:
                    del self._stale[partition]
                if len(picked) >= budget:
                    break
            records: list[UserState] = []
            owners: list[tuple[int, bytes]] = []
            for partition, key in picked:
                raw = self.state.read(key, partition)
                if raw is None:
                    continue
                try:
                    record = decode_state(raw, self.spec)
                except StateDecodeError:
                    self.metrics.count_state_decode_errors()
                    continue
                # An event may have rebuilt the user since the scan.
                if record.event_count and not is_current(record, encoder):
                    records.append(record)
                    owners.append((partition, key))
            if not records:
                return 0
            # The cache must not hand the next fold the record from before the rebuild.
            self.processor.forget(key.decode(errors="replace") for _, key in owners)
            output = BatchOutput()
            now_ms = wall_clock_ms()
            for (partition, key), (record, embedding) in zip(owners, current_records(records, encoder), strict=True):
                record.version += 1
                self.state.put(key, partition, encode_state(record, self.spec))
                user_id = key.decode(errors="replace")
                output.profiles.append((key, build_profile(user_id, record, embedding, self.spec, now_ms).to_bytes()))
            await self._publish(output)
        return len(records)

    def _still_idle(self, key: bytes, partition: int, watermark_ms: int | None) -> bool:
        raw = self.state.read(key, partition)
        if raw is None or watermark_ms is None:
            return False
        try:
            event_count, last_event_ms = peek_activity(raw)
        except StateDecodeError:
            return False
        return is_idle(event_count, last_event_ms, watermark_ms, self.spec)

    async def _sweep_heap(self) -> None:
        """The full garbage-collector sweep of :mod:`streams.worker.gc_tuning` (only where that policy runs)."""
        if not is_tuned():
            return
        collected, seconds = sweep_frozen_heap()
        self.metrics.observe_gc_sweep(seconds)
        log.info("full garbage-collector sweep: %d objects collected in %.0f ms", collected, seconds * 1000)

    async def _purge_state(self) -> None:
        """Take deleted records out of the state files (:class:`streams.worker.state_purge.StatePurger`)."""
        await self.purger.run_once()

    async def _purge_after_start(self) -> None:
        """The first purge round, soon after the start rather than a whole interval later (see
        :func:`streams.worker.state_purge.first_purge_delay_s`)."""
        await asyncio.sleep(first_purge_delay_s(self.settings))
        await self.purger.run_once()

    async def _stage_tombstones(self, keys: list[bytes]) -> None:
        await self.bulk.learn_partitions(self._profiles_topic)
        for key in keys:
            self.bulk.stage(self._profiles_topic, self.bulk.partition_of(self._profiles_topic, key), key, None)

    # -- rebalancing and lag --------------------------------------------------------------------------------

    def _input_partitions(self, tps: Iterable[Any]) -> set[int]:
        return {tp.partition for tp in tps if tp.topic in self._topic_types}

    async def _on_revoked(self, sender: Any, revoked: Any, **_: Any) -> None:
        # From now on the unit in flight drops the store writes of these partitions (the changelog has them),
        # and their held events are never acknowledged: their next owner reads them again.
        gone = self._input_partitions(revoked)
        self._owned -= gone
        dropped = self.aligner.drop(gone)
        self.continuity.forget(gone)
        if dropped:
            log.info("dropped %d held events of revoked partitions; they are delivered again", len(dropped))
        async with self._unit_lock:
            # Another worker may change these users' records from now on.
            self.processor.forget()
            # Nor is what it processed there its position any more: when such a partition comes back, the lag and
            # consumed-offset series would show the old offset until its next event.
            self._processed = {tp: offset for tp, offset in self._processed.items() if tp[1] not in gone}
        self._paused = {tp for tp in self._paused if tp[1] not in gone}

    async def _on_assigned(self, sender: Any, assigned: Any, **_: Any) -> None:
        # Records of newly assigned partitions come from the changelog, not from this worker's cache.
        self.processor.forget()
        self.metrics.count_rebalance()
        inputs = [tp for tp in assigned if tp.topic in self._topic_types]
        take_inputs(self.app, frozenset(self._topic_types), self._take_poll, self._after_seek)
        self._owned = self._input_partitions(inputs)
        self.aligner.assign(self._owned)
        self._paused.clear()
        self.metrics.retain_partitions((tp.topic, tp.partition) for tp in inputs)
        self.lag_monitor.retain((tp.topic, tp.partition) for tp in inputs)

    def _after_seek(self, committed: Mapping[Any, int | None]) -> None:
        """Where each input partition's delivery starts, from the committed offsets the consumer just sought back
        to (at the end of every rebalance): the continuity check expects that offset, the aligner knows where an
        empty partition stands, and the progress series starts there, so a partition stuck from the moment it
        was assigned still shows up as stalled.

        Not the consumer's position, asked for in the assignment callback as before: faust's recovery can
        resume the flow while that callback runs, and a position asked for then lay past messages fetched but
        not yet checked, which the check dropped as copies; the worker never folded them (a backfill test
        stalled in CI so; with delays added to the callback and the receive path, it stalled in every run).
        """
        uncommitted: list[Any] = []
        for tp, offset in committed.items():
            if tp.topic not in self._topic_types:
                continue
            # Nothing committed yet: the first message is taken as it comes (the consumer starts at the log's
            # start); a committed 0 is the same start, and the continuity check probes it if retention moved it.
            start = offset if offset is not None and offset >= 0 else None
            self.continuity.start((tp.topic, tp.partition), start)
            if start is None:
                uncommitted.append(tp)
            else:
                self._note_start(tp, start)
        if self._start_hints is not None:
            self._start_hints.cancel()  # asked for an earlier assignment
        self._start_hints = asyncio.ensure_future(self._note_positions(uncommitted)) if uncommitted else None

    def _note_start(self, tp: Any, start: int) -> None:
        self._start_positions[(tp.topic, tp.partition)] = start
        if (tp.topic, tp.partition) not in self._processed:
            self.metrics.set_consumed_offset(tp.topic, tp.partition, start - 1)

    async def _note_positions(self, tps: list[Any]) -> None:
        """The consumer's positions as the start of partitions with nothing committed, for the progress series
        and the aligner only (the continuity check never uses them): without a start, a partition stuck from its
        first message on would show no stall, and an empty one would hold the others once for the idle bound."""
        for tp in tps:
            # Or until the app stops: a stop during a rebalance closes the consumer thread this call waits for,
            # and the worker then hung for faust's 60 s task timeout before it could exit.
            try:
                waited = await self.app.wait(self._next_offset((tp.topic, tp.partition)))
            except IllegalStateError:
                continue  # revoked meanwhile: a rebalance began
            if waited.stopped:
                return
            if waited.result is not None:
                self._note_start(tp, waited.result)

    async def _next_offset(self, tp: tuple[str, int]) -> int | None:
        position: int | None = await self.app.consumer.position(TP(*tp))
        return position

    async def _stop_lag_monitor(self, sender: Any, **_: Any) -> None:
        await self.lag_monitor.stop()

    async def _refresh_lag(self) -> None:
        # Lag against the broker's end offsets, asked for on every refresh: during an outage it holds, never 0.
        everything = [(tp.topic, tp.partition) for tp in self.app.consumer.assignment()]
        assigned = [tp for tp in everything if tp[0] in self._topic_types]
        # Whether the broker answers, from every partition the consumer fetches, not only the inputs: aiokafka
        # does not fetch a partition whose records wait to be taken, so while a large poll is being worked
        # through (seconds, in a drain) no input partition is fetched, and judged on them alone a busy worker
        # took itself for cut off and held its caught-up partitions for the settling time (seen in drains of two
        # workers; with a 100 ms fetch wait 4 of 22 such drains took half a minute). The quiet partitions
        # (erasure requests, standby changelogs) are fetched on throughout, answered within
        # consumer_fetch_max_wait_ms.
        # A partition paused for back-pressure is not fetched: it says nothing about the broker.
        fetched = [
            at for at in (fetched_at_ms(self.app, *tp) for tp in everything if tp not in self._paused) if at is not None
        ]
        self.broker_absence.observe(time.time() * 1000, max(fetched, default=None))
        # Idle: every fetched message is processed (none queued, held or in a unit), so the consumer's position
        # is where processing stands, past offsets that hold no event.
        idle = self._inbox.empty() and not self.aligner.held and not self._unit_lock.locked()
        await self.lag_monitor.refresh(assigned, self._processed, idle=idle)
