"""Event-time alignment of the co-partitioned input topics, free of Faust.

The three input topics are fetched independently: in a backlog one of them can run hours of event time ahead of
the others, so a user's events would reach the fold far out of order, and lateness judged against the newest
event would refuse most of a backlog. :class:`EventTimeAligner` merges the partitions that share a partition
number the way Kafka Streams' partition group does: it always releases the queued message with the lowest event
time among the heads of the partitions, and it releases nothing while one of those partitions has no queued
message but may hold more on the broker. A partition that is caught up (an idle topic) holds nobody back,
unless the others have run more than the allowed lateness ahead of its newest event (``max_ahead_ms``): then it
holds them for at most ``max_idle_ms``, since a burst of a producer lands one partition at a time and an event of
it still on its way would be refused as too late (the chaos suite's disk_full scenario lost 64 to 204 events so,
its second half sent as a burst). One
whose state is unknown (no fetch answered yet) holds the others for at most ``max_idle_ms``. One known to hold
unread events (its highwater mark is past what was received: a slow fetch, a broker coming back) holds them
for at most ``max_lag_wait_ms``, which is long: going on without it would fold its older events after newer
ones of the same users, and past the allowed lateness they would be refused.

Within one topic partition messages leave in offset order (a queue per partition), so the offsets the worker
acknowledges are always a prefix of what it received: Kafka's committed offset never passes a held message.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Generic, TypeVar

T = TypeVar("T")

log = logging.getLogger(__name__)

TopicPartition = tuple[str, int]


class Progress(Enum):
    """What the broker holds of a partition beyond what was received."""

    CAUGHT_UP = "caught_up"
    """Nothing: the partition holds nobody back."""
    BEHIND = "behind"
    """Unread events are known to be there (highwater mark past the next offset to receive)."""
    UNKNOWN = "unknown"
    """No fetch has answered for it yet."""
    STALE = "stale"
    """Caught up when last seen, but no fetch has answered for it lately (the broker away, a fetch failing), or
    the broker has only just come back: events may have arrived meanwhile, so it waits like BEHIND."""


PartitionProgress = Callable[[str, int, int | None], Progress]
"""The :class:`Progress` of (topic, partition) given the next offset to receive (None: nothing received yet)."""


@dataclass(slots=True)
class Held(Generic[T]):
    """One received message waiting for its turn: where it came from, its event time and what to hand on."""

    topic: str
    partition: int
    offset: int
    ts_ms: int
    item: T


@dataclass(slots=True)
class _PartitionQueue(Generic[T]):
    items: deque[Held[T]] = field(default_factory=deque)
    next_offset: int | None = None
    """The offset after the last one received (None: nothing received since assignment)."""
    last_ts_ms: int | None = None
    waiting_since_ms: int | None = None
    """When the aligner started waiting for this empty partition (None: not waiting)."""


class EventTimeAligner(Generic[T]):
    """Queues received messages per topic partition and releases them in event-time order per partition number.

    ``topics`` are the co-partitioned input topics. ``max_idle_ms`` bounds how long an empty partition that is
    known to have more data can hold back the others (Kafka Streams' ``max.task.idle.ms``).
    ``max_queued_per_partition`` is the queue length at which :meth:`over_limit` names a partition to pause.
    """

    def __init__(
        self,
        topics: Sequence[str],
        max_idle_ms: int,
        max_queued_per_partition: int,
        max_lag_wait_ms: int = 600_000,
        max_ahead_ms: int | None = None,
    ) -> None:
        self.topics = tuple(topics)
        self.max_idle_ms = max_idle_ms
        self.max_lag_wait_ms = max_lag_wait_ms
        self.max_ahead_ms = max_ahead_ms
        self.max_queued_per_partition = max_queued_per_partition
        self._queues: dict[TopicPartition, _PartitionQueue[T]] = {}
        self._assigned: set[int] = set()
        self.held = 0

    def assign(self, partitions: Iterable[int]) -> None:
        """The partition numbers this worker now owns; queues of the others are dropped (not acknowledged)."""
        self._assigned = set(partitions)
        for key in [k for k in self._queues if k[1] not in self._assigned]:
            self.held -= len(self._queues.pop(key).items)

    def drop(self, partitions: Iterable[int]) -> list[Held[T]]:
        """Forget the queued messages of ``partitions`` (revoked); returns them. They are never acknowledged,
        so Kafka delivers them again to whichever worker owns the partitions next."""
        dropped: list[Held[T]] = []
        gone = set(partitions)
        for key in [k for k in self._queues if k[1] in gone]:
            queue = self._queues.pop(key)
            dropped.extend(queue.items)
        self._assigned -= gone
        self.held -= len(dropped)
        return dropped

    def add(self, held: Held[T]) -> None:
        """Queue one received message; messages of one topic partition must come in offset order."""
        queue = self._queues.setdefault((held.topic, held.partition), _PartitionQueue())
        queue.items.append(held)
        queue.next_offset = held.offset + 1
        queue.last_ts_ms = held.ts_ms
        queue.waiting_since_ms = None
        self.held += 1

    def last_ts_ms(self, topic: str, partition: int) -> int | None:
        """Event time of the newest message received from a topic partition (None: none yet)."""
        queue = self._queues.get((topic, partition))
        return None if queue is None else queue.last_ts_ms

    def release(self, now_ms: int, progress: PartitionProgress, limit: int | None = None) -> list[Held[T]]:
        """What may be processed now, in event-time order per partition number: at most ``limit`` messages
        (None: all), shared out evenly between the partition numbers that hold any."""
        released: list[Held[T]] = []
        partitions = sorted({p for (_, p), q in self._queues.items() if q.items})
        for n, partition in enumerate(partitions):
            room = None if limit is None else -(-(limit - len(released)) // (len(partitions) - n))
            released.extend(self._release_partition(partition, now_ms, progress, room))
        self.held -= len(released)
        return released

    def _release_partition(
        self, partition: int, now_ms: int, progress: PartitionProgress, room: int | None
    ) -> list[Held[T]]:
        queues = [self._queues.setdefault((topic, partition), _PartitionQueue()) for topic in self.topics]
        out: list[Held[T]] = []
        while room is None or len(out) < room:
            heads = [q for q in queues if q.items]
            if not heads:
                return out
            for topic, queue in zip(self.topics, queues, strict=True):
                if queue.items:
                    queue.waiting_since_ms = None
                    continue
                state = progress(topic, partition, queue.next_offset)
                if state is Progress.CAUGHT_UP and not self._left_behind(queue, heads):
                    queue.waiting_since_ms = None
                    continue
                # Empty, and the broker may hold older events for it, or the others have run so far ahead of it
                # that its next event could be refused as too late: wait, but only so long.
                if queue.waiting_since_ms is None:
                    queue.waiting_since_ms = now_ms
                limit_ms = self.max_lag_wait_ms if state in (Progress.BEHIND, Progress.STALE) else self.max_idle_ms
                waited_ms = now_ms - queue.waiting_since_ms
                if waited_ms < limit_ms:
                    return out
            head = min(heads, key=lambda q: q.items[0].ts_ms)
            out.append(head.items.popleft())
        return out

    def _left_behind(self, queue: _PartitionQueue[T], heads: Sequence[_PartitionQueue[T]]) -> bool:
        """Whether the next message to go is more than ``max_ahead_ms`` of event time past the newest one this
        (empty, caught-up) partition received: one of its events still on its way (a producer's burst lands one
        partition at a time) would then be refused as too late, while nothing can be refused within it."""
        if self.max_ahead_ms is None or queue.last_ts_ms is None:
            return False
        return min(h.items[0].ts_ms for h in heads) - queue.last_ts_ms > self.max_ahead_ms

    def over_limit(self) -> tuple[set[TopicPartition], set[TopicPartition]]:
        """(partitions to pause, partitions to resume): a queue longer than the limit pauses its partition's
        fetching until it has drained to half, so memory stays bounded however far one topic runs ahead."""
        pause: set[TopicPartition] = set()
        resume: set[TopicPartition] = set()
        for key, queue in self._queues.items():
            if len(queue.items) >= self.max_queued_per_partition:
                pause.add(key)
            elif len(queue.items) <= self.max_queued_per_partition // 2:
                resume.add(key)
        return pause, resume


class BrokerAbsence:
    """Whether the broker was away from this worker's consumer lately, for :func:`partition_progress`.

    The consumer was cut off when no fetch had answered for any of its partitions for ``stale_after_ms``
    (:meth:`observe`, a few times a minute). :meth:`settling` holds from then until ``settle_ms`` after the last
    such observation. Judged from the consumer's own fetches, not from the lag monitor's end-offset requests:
    under a heavy load those time out while the fetches go on (one false "unreachable" stalled a benchmark drain
    for half a minute).
    """

    def __init__(self, stale_after_ms: float, settle_ms: float) -> None:
        self.stale_after_ms = stale_after_ms
        self.settle_ms = settle_ms
        self._away_at_ms: float | None = None

    def observe(self, now_ms: float, newest_fetch_ms: float | None) -> None:
        """Record the newest fetch answer of any partition the consumer fetches (None: none fetched yet, which is
        no outage). The input partitions alone are not enough: one whose records wait to be taken is not fetched
        again, so a worker busy with a large poll would look cut off."""
        if newest_fetch_ms is not None and now_ms - newest_fetch_ms > self.stale_after_ms:
            if not self.settling(now_ms) and self.settle_ms > 0:
                log.info(
                    "no fetch has answered for %.0f s: until %.0f s after the broker answers again, an input "
                    "partition with nothing unread holds the other topics back",
                    (now_ms - newest_fetch_ms) / 1000,
                    self.settle_ms / 1000,
                )
            self._away_at_ms = now_ms

    def settling(self, now_ms: float) -> bool:
        """Whether the consumer found the broker away less than ``settle_ms`` ago (never when that is 0)."""
        return self._away_at_ms is not None and now_ms - self._away_at_ms < self.settle_ms


def partition_progress(
    position: int | None,
    ends: Sequence[int],
    fetched_age_ms: float | None,
    stale_after_ms: float,
    settling: bool = False,
) -> Progress:
    """The :class:`Progress` of a partition from what is known of it.

    ``position`` is the next offset to receive (None: unknown); ``ends`` the end offsets known from the consumer's
    fetches and from asking the broker; ``fetched_age_ms`` how long ago a fetch last answered for the partition
    (None: never). Caught up only on fresh evidence: after an outage the known ends are those of before it, and
    taking them for the truth let one topic's newer events go ahead of another's older ones, which then came
    too late (the chaos suite's broker scenario: 10 valid events refused).

    ``settling``: the broker is away, or answered again only lately after being so (:class:`BrokerAbsence`).
    Producers are then still delivering what they buffered during the outage, each partition when its leader
    takes their retry, so an empty partition is not caught up on any evidence: one topic's buffered events can
    land seconds after another's newer ones (the broker scenario again: 178 valid events refused after a broker
    restart).
    """
    if not ends or position is None:
        return Progress.UNKNOWN
    if position < max(ends):
        return Progress.BEHIND
    if settling or fetched_age_ms is None or fetched_age_ms > stale_after_ms:
        return Progress.STALE
    return Progress.CAUGHT_UP
