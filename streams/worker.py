"""The Faust worker: one agent over the three input topics, a RocksDB-backed user-state table, and publishing.

faust-streaming's ``take_events()`` gives the agent micro-batches, but inside a batch there is no current event
in the agent's task, and a table read or write takes its RocksDB partition and its changelog partition from
the current event; :mod:`streams.state_table` pins each table operation to the user's own partition (the
two-worker rebalance test proves no state moves). A second agent serves erasure requests, and a timer expires
users idle longer than the TTL in event time.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import faust

from state.codec import peek_activity
from state.errors import StateDecodeError
from state.expiry import is_idle
from state.record_cache import RecordCache
from state.spec import StateSpec
from streams.bulk_producer import BulkProducer
from streams.encoder_runtime import EncoderRuntime
from streams.gc_tuning import is_tuned, sweep_frozen_heap
from streams.lookup import register_lookup
from streams.metrics import WorkerMetrics
from streams.processor import BatchOutput, BatchProcessor, InboundMessage
from streams.rocksdb_store import register_store
from streams.settings import Settings
from streams.state_table import FaustStateAccess
from streams.topics import DEADLETTER, ERASURE, PROFILES, input_topic

log = logging.getLogger(__name__)

TABLE_NAME = "user-state"
LAG_REFRESH_S = 5.0
BATCH_BYTES = 512 * 1024
"""Upper bound of one Kafka record batch the worker produces (the broker takes up to 1 MiB by default)."""
EXPIRY_YIELD_EVERY = 2000


def _dead_letter_headers(letter: Any) -> list[tuple[str, bytes]]:
    msg = letter.message
    return [
        ("ps.stage", letter.stage.encode()),
        ("ps.reason", letter.reason.value.encode()),
        ("ps.detail", letter.detail.encode()),
        ("ps.source.topic", msg.topic.encode()),
        ("ps.source.partition", str(msg.partition).encode()),
        ("ps.source.offset", str(msg.offset).encode()),
    ]


class ProfileWorker:
    """Builds the Faust app, its topics, table and agent for one configuration."""

    def __init__(
        self,
        settings: Settings,
        encoder: EncoderRuntime,
        metrics: WorkerMetrics,
        spec: StateSpec,
        processor: BatchProcessor | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        # A processor can be injected (the benchmarks compare designs on the same worker).
        self.processor = processor or BatchProcessor(
            encoder, spec, metrics, cache=RecordCache(settings.state_cache_users)
        )
        self.app = faust.App(
            settings.app_id,
            broker=[f"kafka://{server.strip()}" for server in settings.kafka_bootstrap.split(",")],
            store=register_store(),
            datadir=str(settings.state_dir),
            topic_partitions=settings.partitions,
            topic_replication_factor=settings.replication_factor,
            consumer_auto_offset_reset="earliest",
            web_enabled=True,
            web_bind=settings.web_bind,
            web_port=settings.web_port,
            # Recovery of a few hundred MB of changelog is fast; do not idle seconds after each rebalance.
            stream_recovery_delay=0.5,
            broker_commit_interval=1.0,
            # Records leave in batches the worker builds itself (BulkProducer): waiting for more only adds latency.
            producer_linger_ms=0,
            # Room for a micro-batch's records of one partition in a few record batches (see BulkProducer).
            producer_max_batch_size=BATCH_BYTES,
        )
        self._topic_types = {settings.topic(input_topic(t)): t for t in ("browse", "search", "purchase")}
        self.inputs = self.app.topic(*self._topic_types, key_serializer="raw", value_serializer="raw")
        self.deadletter = self.app.topic(settings.topic(DEADLETTER), key_serializer="raw", value_serializer="raw")
        self.table = self.app.Table(
            TABLE_NAME,
            partitions=settings.partitions,
            key_type=bytes,
            value_type=bytes,
            default=None,
        )
        self.erasure = self.app.topic(settings.topic(ERASURE), key_serializer="raw", value_serializer="raw")
        self.spec = spec
        # State changelog records and profiles leave in record batches, not one send each (streams.bulk_producer).
        self.bulk = BulkProducer(
            self._kafka_producer, on_failed=lambda _topic, _partition, count: metrics.count_publish_failures(count)
        )
        self.state = FaustStateAccess(self.table, self.bulk)
        self._profiles_topic = settings.topic(PROFILES)
        self._processed: dict[tuple[str, int], int] = {}
        self._watermarks_ms: dict[int, int] = {}
        self.app.agent(self.inputs, name="fold-events", concurrency=1)(self._fold_events)
        self.app.agent(self.erasure, name="erase-users", concurrency=1)(self._erase_users)
        self.app.timer(LAG_REFRESH_S)(self._refresh_lag)
        self.app.timer(settings.expiry_interval_s)(self._expire_idle_users)
        self.app.timer(settings.gc_sweep_interval_s)(self._sweep_heap)
        self.app.on_partitions_assigned.connect(self._on_assigned)  # type: ignore[arg-type]
        self.app.on_partitions_revoked.connect(self._on_revoked)  # type: ignore[arg-type]
        register_lookup(self.app, self.table, encoder, spec)
        metrics.set_model_version(encoder.model_version)

    def _kafka_producer(self) -> Any:
        # faust's aiokafka producer exists once the app has started.
        producer: Any = self.app.producer
        return producer._ensure_producer()

    def _inbound(self, event: Any) -> InboundMessage:
        msg = event.message
        return InboundMessage(
            topic=msg.topic,
            partition=msg.partition,
            offset=msg.offset,
            key=msg.key,
            value=msg.value,
            topic_type=self._topic_types.get(msg.topic, "unknown"),
            token=event,
        )

    async def _fold_events(self, stream: Any) -> None:
        s = self.settings
        async for events in stream.take_events(s.batch_max_events, within=s.batch_max_ms / 1000):
            messages = [self._inbound(e) for e in events]
            # Everything up to the sends is synchronous, so a cancellation cannot split a batch's state update.
            output = self.processor.process(messages, self.state)
            await self._publish(output)
            for m in messages:
                self._processed[(m.topic, m.partition)] = m.offset
            for partition, ts_ms in output.watermarks_ms.items():
                if ts_ms > self._watermarks_ms.get(partition, 0):
                    self._watermarks_ms[partition] = ts_ms

    async def _erase_users(self, stream: Any) -> None:
        """Erasure requests: delete the user's state (store and changelog) and publish a tombstone."""
        async for event in stream.events():
            key = event.message.key
            if not key:
                log.warning("ignored an erasure request without key (partition %s)", event.message.partition)
                continue
            self.processor.forget([bytes(key).decode(errors="replace")])
            self.state.delete(bytes(key), event.message.partition)
            await self._stage_tombstones([bytes(key)])
            await self.bulk.flush()
            self.metrics.count_tombstones("erasure")

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
        actives = {tp.partition for tp in self.app.assignor.assigned_actives() if tp.topic in self._topic_types}
        users = 0
        for partition in sorted(actives & set(self.state.local_partitions())):
            watermark_ms = self._watermarks_ms.get(partition)
            expired: list[bytes] = []
            for n, (key, raw) in enumerate(self.state.records(partition), start=1):
                users += 1
                if n % EXPIRY_YIELD_EVERY == 0:
                    await asyncio.sleep(0)
                try:
                    event_count, last_event_ms = peek_activity(raw)
                except StateDecodeError:
                    self.metrics.count_state_decode_errors()
                    continue
                if watermark_ms is not None and is_idle(event_count, last_event_ms, watermark_ms, self.spec):
                    expired.append(key)
            self.processor.forget(key.decode(errors="replace") for key in expired)
            for key in expired:
                self.state.delete(key, partition)
            await self._stage_tombstones(expired)
            await self.bulk.flush()
            if expired:
                self.metrics.count_tombstones("expiry", len(expired))
                users -= len(expired)
                log.info("expired %d idle users in partition %d", len(expired), partition)
        self.metrics.set_users_in_state(users)

    async def _sweep_heap(self) -> None:
        """The full garbage-collector sweep of :mod:`streams.gc_tuning` (only where that policy runs)."""
        if not is_tuned():
            return
        collected, seconds = sweep_frozen_heap()
        self.metrics.observe_gc_sweep(seconds)
        log.info("full garbage-collector sweep: %d objects collected in %.0f ms", collected, seconds * 1000)

    async def _stage_tombstones(self, keys: list[bytes]) -> None:
        await self.bulk.learn_partitions(self._profiles_topic)
        for key in keys:
            self.bulk.stage(self._profiles_topic, self.bulk.partition_of(self._profiles_topic, key), key, None)

    async def _publish(self, output: BatchOutput) -> None:
        topic = self._profiles_topic
        await self.bulk.learn_partitions(topic)
        for key, value in output.profiles:
            self.bulk.stage(topic, self.bulk.partition_of(topic, key), key, value)
        # The state changelog records staged by the processor leave with the profiles.
        await self.bulk.flush()
        # Let the producer's sender take the batches before the next micro-batch holds the event loop.
        await asyncio.sleep(0)
        for letter in output.dead_letters:
            await self.deadletter.send(
                key=letter.message.key, value=letter.message.value, headers=_dead_letter_headers(letter)
            )
        if output.profiles:
            self.metrics.count_published(len(output.profiles))
        if output.dead_letters:
            self.metrics.count_deadletter(len(output.dead_letters))

    async def _on_revoked(self, sender: Any, revoked: Any, **_: Any) -> None:
        # Another worker may change these users' records from now on.
        self.processor.forget()

    async def _on_assigned(self, sender: Any, assigned: Any, **_: Any) -> None:
        # Records of newly assigned partitions come from the changelog, not from this worker's cache.
        self.processor.forget()
        self.metrics.count_rebalance()
        inputs = [tp for tp in assigned if tp.topic in self._topic_types]
        self.metrics.retain_partitions((tp.topic, tp.partition) for tp in inputs)
        # Start the progress series at the committed position, so a partition stuck from the moment it was
        # assigned still shows up as stalled.
        for tp in inputs:
            position = await self.app.consumer.position(tp)
            if position is not None and (tp.topic, tp.partition) not in self._processed:
                self.metrics.set_consumed_offset(tp.topic, tp.partition, position - 1)

    async def _refresh_lag(self) -> None:
        consumer = self.app.consumer
        for tp in consumer.assignment():
            if tp.topic not in self._topic_types:
                continue
            highwater = consumer.highwater(tp)
            processed = self._processed.get((tp.topic, tp.partition))
            if highwater is None:
                continue
            next_offset = processed + 1 if processed is not None else (await consumer.position(tp) or 0)
            self.metrics.set_lag(tp.topic, tp.partition, max(0, highwater - next_offset))
            if processed is not None:
                self.metrics.set_consumed_offset(tp.topic, tp.partition, processed)
