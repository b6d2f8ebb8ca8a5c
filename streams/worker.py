"""The Faust worker: one agent over the three input topics, a RocksDB-backed user-state table, and publishing.

faust-streaming's ``take_events()`` gives the agent micro-batches, but inside a batch there is no current event
in the agent's task, and a table read or write takes its RocksDB partition and its changelog partition from
the current event. :func:`_as_current` therefore makes one of the user's own messages the current event around
each of that user's table operations, so the user's record lands in the partition that owns the user, in the
store and in the changelog alike (the two-worker rebalance test proves no state moves).
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import faust
from faust.streams import _current_event

from state.rocksdb_options import RocksDBTuning
from state.spec import StateSpec
from streams.encoder_runtime import EncoderRuntime
from streams.metrics import WorkerMetrics
from streams.processor import BatchOutput, BatchProcessor, InboundMessage
from streams.settings import Settings
from streams.topics import DEADLETTER, PROFILES, input_topic

log = logging.getLogger(__name__)

TABLE_NAME = "user-state"
LAG_REFRESH_S = 5.0


@contextmanager
def _as_current(event: Any) -> Iterator[None]:
    """Make ``event`` the current Faust event for the table operations inside the block."""
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


class FaustStateAccess:
    """:class:`streams.processor.StateAccess` on a Faust table, pinned to each user's own partition."""

    def __init__(self, table: Any) -> None:
        self.table = table

    def load(self, user_id: str, message: InboundMessage) -> bytes | None:
        with _as_current(message.token):
            value = self.table.get(user_id.encode())
        return value if value is None else bytes(value)

    def store(self, user_id: str, message: InboundMessage, value: bytes) -> None:
        with _as_current(message.token):
            self.table[user_id.encode()] = value


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

    def __init__(self, settings: Settings, encoder: EncoderRuntime, metrics: WorkerMetrics, spec: StateSpec) -> None:
        self.settings = settings
        self.metrics = metrics
        self.processor = BatchProcessor(encoder, spec, metrics)
        self.app = faust.App(
            settings.app_id,
            broker=[f"kafka://{server.strip()}" for server in settings.kafka_bootstrap.split(",")],
            store="rocksdb://",
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
            producer_linger_ms=5,
        )
        self._topic_types = {settings.topic(input_topic(t)): t for t in ("browse", "search", "purchase")}
        self.inputs = self.app.topic(*self._topic_types, key_serializer="raw", value_serializer="raw")
        self.profiles = self.app.topic(settings.topic(PROFILES), key_serializer="raw", value_serializer="raw")
        self.deadletter = self.app.topic(settings.topic(DEADLETTER), key_serializer="raw", value_serializer="raw")
        self.table = self.app.Table(
            TABLE_NAME,
            partitions=settings.partitions,
            key_type=bytes,
            value_type=bytes,
            default=None,
            # A fresh dict each time: faust mutates the options it is given.
            options=RocksDBTuning().faust_table_options(),
        )
        self.state = FaustStateAccess(self.table)
        self._processed: dict[tuple[str, int], int] = {}
        self.app.agent(self.inputs, name="fold-events", concurrency=1)(self._fold_events)
        self.app.timer(LAG_REFRESH_S)(self._refresh_lag)
        self.app.on_partitions_assigned.connect(self._on_assigned)  # type: ignore[arg-type]
        metrics.set_model_version(encoder.model_version)

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

    async def _publish(self, output: BatchOutput) -> None:
        for key, value in output.profiles:
            await self.profiles.send(key=key, value=value)
        for letter in output.dead_letters:
            await self.deadletter.send(
                key=letter.message.key, value=letter.message.value, headers=_dead_letter_headers(letter)
            )
        if output.profiles:
            self.metrics.count_published(len(output.profiles))
        if output.dead_letters:
            self.metrics.count_deadletter(len(output.dead_letters))

    async def _on_assigned(self, sender: Any, assigned: Any, **_: Any) -> None:
        self.metrics.count_rebalance()
        self.metrics.retain_partitions((tp.topic, tp.partition) for tp in assigned if tp.topic in self._topic_types)

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
