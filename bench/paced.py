"""The paced load: offer a fixed rate of events, each stamped with the wall clock as it is sent.

It runs in a child process of its own (:func:`run_paced_load`), so the benchmark's profile reader does not share
an interpreter lock with it. The child writes the schedule index and event time of every event it sent to a
``.npz`` file, from which the freshness of each event is computed afterwards.
"""

from __future__ import annotations

import multiprocessing
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.load import EventEncoder, LoadSpec, build_schedule


@dataclass(frozen=True)
class PacedPlan:
    """Send events ``start``, ``start+1``, ... of ``spec``'s schedule at ``rate_per_s`` for ``duration_s``."""

    bootstrap: str
    topics: dict[str, str]
    spec: LoadSpec
    start: int
    rate_per_s: float
    duration_s: float
    out_path: Path


@dataclass(frozen=True)
class PacedLog:
    """What a paced load sent: schedule indices and the event time each was stamped with."""

    index: np.ndarray
    ts_ms: np.ndarray

    @property
    def end(self) -> int:
        """The schedule index after the last event sent."""
        return int(self.index[-1]) + 1 if self.index.shape[0] else 0


def _send(plan: PacedPlan) -> None:
    from bench.kafka_io import DeliveryErrors, new_producer, produce
    from streams.client.producer import LINGER_MS

    encoder = EventEncoder(build_schedule(plan.spec))
    # The SDK's linger: the load stands for producer apps. It was 1 ms, a produce request every few events; at
    # 3,000 events/s on a fresh broker p99 was 1,765 and 2,443 ms against 904 and 1,773 ms with 5 ms (two pairs,
    # python -m bench.live_probe --rate 3000), the broker 93-95 % of a core against 86-88 %.
    producer = new_producer(plan.bootstrap, linger_ms=LINGER_MS)
    # Connect and learn the partitions before the clock starts: the first events must not carry the producer's
    # start-up (connection, metadata, idempotent producer id) as freshness.
    for topic in plan.topics.values():
        producer.list_topics(topic, timeout=30)
    errors = DeliveryErrors()
    last = len(encoder.schedule)
    indices: list[int] = []
    stamps: list[int] = []
    index = plan.start
    started = time.perf_counter()
    while index < last:
        elapsed = time.perf_counter() - started
        if elapsed >= plan.duration_s:
            break
        due = plan.start + int(elapsed * plan.rate_per_s) + 1
        while index < min(due, last):
            ts_ms = time.time_ns() // 1_000_000
            message = encoder.message(index, ts_ms)
            produce(producer, plan.topics[message[0]], message, errors)
            indices.append(index)
            stamps.append(ts_ms)
            index += 1
        producer.poll(0)
        time.sleep(0.0005)
    if producer.flush(60):
        raise RuntimeError("paced events were not acknowledged")
    errors.check()
    np.savez(plan.out_path, index=np.asarray(indices, dtype=np.int64), ts_ms=np.asarray(stamps, dtype=np.int64))


class PacedLoad:
    """A paced load running in its child process; the caller keeps reading profiles meanwhile."""

    def __init__(self, plan: PacedPlan) -> None:
        self.plan = plan
        self._child = multiprocessing.get_context("spawn").Process(target=_send, args=(plan,), name="bench-paced")
        self._child.start()

    def running(self) -> bool:
        """True while the child still sends (or flushes)."""
        return self._child.is_alive()

    def result(self) -> PacedLog:
        """Wait for the child; returns what it sent."""
        self._child.join(self.plan.duration_s + 120)
        if self._child.is_alive():
            self._child.kill()
            raise RuntimeError("the paced load did not finish")
        if self._child.exitcode != 0:
            raise RuntimeError(f"the paced load failed with exit code {self._child.exitcode}")
        with np.load(self.plan.out_path) as data:
            return PacedLog(index=data["index"], ts_ms=data["ts_ms"])
