"""Offset continuity of the input partitions, free of Faust: no offset is skipped unless the broker says so.

faust-streaming's fetch loop drops every message below a partition's *read offset* as already read, and counts a
jump past it as a hole in the log whose offsets its commit may pass. After a rebalance faust seeks back to the
committed offsets while the fetch loop is still handing over the rest of a batch fetched before; that rest moves
the read offset up again, the messages fetched afresh are dropped until they pass it, and the commit then passes
events that were never folded (measured: one or two events of a partition lost per restart, in about half of
the kill tests). The worker's consumer (:class:`streams.worker.faust_seam.InputBatchConsumer`) turns both off for
the input topics and leaves the job to :class:`ContinuityCheck`.

:class:`ContinuityCheck` follows, per topic partition, the offset the next message must have. A message below it
was received already (a seek back over it) and is dropped. A message past it is not taken: the partition is
sought back to the expected offset (a *probe*). If the broker then delivers the expected offset, nothing is
skipped; if it delivers the same later offset again, the hole is real (control records of a transactional
producer) and is accepted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

TopicPartition = tuple[str, int]


class Verdict(Enum):
    """What to do with one received message."""

    TAKE = "take"
    """The next offset of its partition: process it."""
    TAKE_AFTER_GAP = "take_after_gap"
    """Process it; the broker confirmed that the offsets before it (down to the expected one) hold no message."""
    DROP = "drop"
    """Already received, or fetched before a probe took effect: never acknowledge it (it is read again)."""
    PROBE = "probe"
    """It skips offsets: drop it and seek the partition back to :attr:`ContinuityCheck.expected`."""


@dataclass(slots=True)
class _Probe:
    expected: int
    seen: int
    since_ms: int
    """When the seek back to ``expected`` was (last) asked for."""


class ContinuityCheck:
    """Per topic partition, the offset the next received message must have, and the probes in flight."""

    def __init__(self) -> None:
        self._expected: dict[TopicPartition, int] = {}
        self._probes: dict[TopicPartition, _Probe] = {}

    def start(self, tp: TopicPartition, committed: int | None) -> None:
        """An assigned partition whose delivery starts at its ``committed`` offset (None: unknown, the first
        message is taken as it comes). Messages of it checked since the assignment keep their expectation:
        they were fetched from that offset on, and going back to it would take them a second time."""
        if committed is None or tp in self._expected:
            return
        self._probes.pop(tp, None)
        self._expected[tp] = committed

    def forget(self, partitions: Iterable[int]) -> None:
        """Stop following the topic partitions of these partition numbers (revoked)."""
        gone = set(partitions)
        for table in (self._expected, self._probes):
            for tp in [tp for tp in table if tp[1] in gone]:
                del table[tp]

    def expected(self, tp: TopicPartition) -> int | None:
        """The offset the next message of ``tp`` must have (None: any, nothing known yet)."""
        return self._expected.get(tp)

    def check(self, tp: TopicPartition, offset: int, now_ms: int = 0) -> Verdict:
        """The verdict on a message of ``tp`` at ``offset``; messages of one partition come in fetch order.
        ``now_ms`` (a monotonic clock) dates a new probe, for :meth:`overdue_probes`."""
        expected = self._expected.get(tp)
        probe = self._probes.get(tp)
        if expected is None or offset == expected:
            self._probes.pop(tp, None)
            self._expected[tp] = offset + 1
            return Verdict.TAKE
        if offset < expected:
            return Verdict.DROP
        if probe is None:
            self._probes[tp] = _Probe(expected, offset, now_ms)
            return Verdict.PROBE
        if offset == probe.seen:
            # The broker, asked from the expected offset on, answered with the same later message: a real hole.
            del self._probes[tp]
            self._expected[tp] = offset + 1
            return Verdict.TAKE_AFTER_GAP
        # Fetched before the probe's seek took effect; it comes again after the seek.
        return Verdict.DROP

    def overdue_probes(self, now_ms: int, timeout_ms: int) -> list[tuple[TopicPartition, int]]:
        """Probes whose seek has not landed within ``timeout_ms``: (partition, offset to seek to again). Each is
        dated anew, so a seek is asked for again at most once per ``timeout_ms``."""
        overdue: list[tuple[TopicPartition, int]] = []
        for tp, probe in self._probes.items():
            if now_ms - probe.since_ms >= timeout_ms:
                probe.since_ms = now_ms
                overdue.append((tp, probe.expected))
        return overdue
