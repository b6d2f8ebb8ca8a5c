"""The feedback consumer group: impressions, browses and purchases of the same users, joined in memory.

The three topics are keyed by user and share one partition count, and the range assignor gives each member the
same partition numbers of every topic, so a user's impressions and clicks meet in one member and the members'
counters add up in Prometheus. Offsets are committed after each poll's records are counted (a crash between the
two counts that poll again: metrics, at least once).

What the join holds is lost with the process, so an assignment reads every partition again from the attribution
window's start (or the committed offset, if older) and counts nothing before the committed offset: a click after
a restart or a rebalance still finds the impression it came from, and an impression clicked before it is not
counted as clicked twice. A group's first start reads the last window of all three topics and counts it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition
from kafka.coordinator.assignors.range import RangePartitionAssignor
from kafka.structs import OffsetAndMetadata

from streams.contract.decoder import Rejection, decode_event
from streams.contract.events import BrowseEvent, PurchaseEvent
from streams.contract.feedback import decode_impression
from streams.contract.topics import IMPRESSIONS, input_topic
from streams.feedback.join import FeedbackJoin
from streams.feedback.metrics import FeedbackMetrics

log = logging.getLogger(__name__)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class FeedbackConsumer(ConsumerRebalanceListener):  # type: ignore[misc]
    """Reads the impression, browse and purchase topics in the group ``group_id`` and counts the join."""

    def __init__(
        self,
        bootstrap_servers: str,
        metrics: FeedbackMetrics,
        *,
        group_id: str,
        topic_prefix: str = "",
        window_ms: int = 30 * 60 * 1000,
        clock_ms: Callable[[], int] = _now_ms,
        **kafka_config: Any,
    ) -> None:
        self._metrics = metrics
        self._clock_ms = clock_ms
        self.join = FeedbackJoin(window_ms=window_ms)
        self._impressions = f"{topic_prefix}{IMPRESSIONS}"
        self._kinds = {
            self._impressions: "impression",
            f"{topic_prefix}{input_topic('browse')}": "browse",
            f"{topic_prefix}{input_topic('purchase')}": "purchase",
        }
        self._to_position: set[TopicPartition] = set()
        self._count_from: dict[TopicPartition, int] = {}
        """Per impression partition: the first offset not counted before (earlier ones are only held)."""
        self._consumer = KafkaConsumer(
            bootstrap_servers=bootstrap_servers,
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            partition_assignment_strategy=[RangePartitionAssignor],
            **kafka_config,
        )
        missing = [topic for topic in self._kinds if not self._consumer.partitions_for_topic(topic)]
        if missing:
            self._consumer.close()
            raise RuntimeError(f"topic {missing[0]} does not exist; run `profilestream topics create`")
        self._consumer.subscribe(list(self._kinds), listener=self)

    @property
    def assigned(self) -> int:
        """Partitions this member owns now."""
        return len(self._consumer.assignment())

    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        """Forget what another member will hold now (what was counted is committed after every poll)."""
        self.join.forget_partitions({tp.partition for tp in revoked})
        self._count_from = {tp: o for tp, o in self._count_from.items() if tp not in revoked}
        self._to_position -= revoked

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        """Pause the new partitions until :meth:`_position` has placed them: kafka-python runs this callback on
        its network thread, where the offset look-ups (blocking calls) are refused."""
        if assigned:
            self._consumer.pause(*assigned)
            self._to_position |= assigned

    def _position(self) -> None:
        """Start each newly assigned partition where the join needs it (module docstring), then resume it."""
        assigned = self._to_position & self._consumer.assignment()
        self._to_position = set()
        if not assigned:
            return
        window_start = {tp: self._clock_ms() - self.join.window_ms for tp in assigned}
        by_time = self._consumer.offsets_for_times(window_start)
        ends = self._consumer.end_offsets(list(assigned))
        for tp in assigned:
            committed = self._consumer.committed(tp)
            found = by_time.get(tp)
            at_window = found.offset if found is not None else ends[tp]
            # Impressions and clicks alike: what the join must know starts at the window, what is counted at the
            # committed offset (clicks are read again too, so an impression's clicks before a restart are known).
            self._count_from[tp] = at_window if committed is None else committed
            self._consumer.seek(tp, at_window if committed is None else min(committed, at_window))
        self._consumer.resume(*assigned)

    def poll_once(self, timeout_ms: int = 500) -> int:
        """Read, join and count what arrived; commit; returns how many records were read."""
        self._position()
        batches = self._consumer.poll(timeout_ms=timeout_ms)
        self._position()  # an assignment made by this poll: its partitions were paused, nothing of them was read
        now_ms = self._clock_ms()
        read = 0
        for tp, records in batches.items():
            kind = self._kinds[tp.topic]
            for record in records:
                self._apply(kind, tp, record, now_ms)
            read += len(records)
        self._metrics.count(self.join.expire(now_ms))
        if read:
            self._commit()
        self._metrics.held_impressions.set(self.join.held)
        self._metrics.pending_clicks.set(self.join.pending)
        self._metrics.assigned_partitions.set(len(self._consumer.assignment()))
        return read

    def _apply(self, kind: str, tp: TopicPartition, record: Any, now_ms: int) -> None:
        key, value = record.key, record.value
        counted = record.offset >= self._count_from.get(tp, 0)
        if kind == "impression":
            # An impression dated ahead of the clock is refused: expiry drops the oldest first and stops at the
            # first that is not due, so one dated years ahead would hold every impression behind it.
            impression = decode_impression(value, key, now_ms=now_ms)
            if isinstance(impression, Rejection):
                if counted:
                    self._reject(kind, impression)
                return
            outcomes = self.join.impression(impression, partition=tp.partition, counted=counted, now_ms=now_ms)
            self._metrics.count(outcomes)
            return
        if value is not None and b'"request_id"' not in value:
            return  # not a click: most browses and purchases are skipped without a JSON parse
        event = decode_event(value, key, topic_type=kind)
        if isinstance(event, Rejection):
            if counted:  # the worker dead-letters it with the same reason; here it is only not counted
                self._reject(kind, event)
            return
        if isinstance(event, BrowseEvent | PurchaseEvent):
            self._metrics.count(self.join.click(event, partition=tp.partition, counted=counted, now_ms=now_ms))

    def _reject(self, kind: str, rejection: Rejection) -> None:
        self._metrics.rejected.labels(kind, rejection.reason.value).inc()
        log.warning("skipped an invalid %s record: %s (%s)", kind, rejection.reason.value, rejection.detail)

    def _commit(self) -> None:
        """Commit, per placed partition, its position or the first offset not yet counted, whichever is later.

        After an assignment a partition is read again from the window's start, below what was counted before;
        committing that position (kafka-python's plain ``commit()``) would have the next member count the
        records between the two a second time after a restart during the catch-up.
        """
        offsets = {
            tp: OffsetAndMetadata(max(self._consumer.position(tp), self._count_from.get(tp, 0)), "", -1)
            for tp in self._consumer.assignment() - self._to_position
        }
        if offsets:
            self._consumer.commit(offsets)

    def close(self) -> None:
        """Commit what was counted and leave the group."""
        try:
            self._commit()
        except Exception as exc:  # leaving matters more than a last commit; the next member counts again
            log.warning("final commit failed: %s", type(exc).__name__)
        self._consumer.close()
