"""The feedback consumer's commits after it read a partition again from the window's start (no broker: a
consumer with kafka-python's commit semantics; tests/streams/test_feedback_kafka.py runs the restart for real)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from kafka import TopicPartition
from prometheus_client import CollectorRegistry

import streams.feedback.consumer as feedback_consumer
from streams.contract.feedback import Impression, encode_impression
from streams.feedback.metrics import FeedbackMetrics

NOW = 1_750_000_000_000
IMPRESSIONS = TopicPartition("events.impression", 0)
TOPICS = ("events.impression", "events.browse", "events.purchase")


@dataclass
class _Record:
    key: bytes
    value: bytes
    offset: int
    timestamp: int


# Fifty impressions in the last twenty minutes: all inside the 30-minute window a start reads again.
def _impression(i: int, ts_ms: int | None = None) -> bytes:
    ts_ms = NOW - 1_200_000 + i if ts_ms is None else ts_ms
    shown = Impression(request_id=f"r{i}", user_id=f"u{i % 5}", ts_ms=ts_ms, model_version="v1", source="profile",
                       item_ids=("a",))  # fmt: skip
    return encode_impression(shown)


LOG = [_Record(f"u{i % 5}".encode(), _impression(i), i, NOW - 1_200_000 + i) for i in range(50)]
COMMITTED: dict[TopicPartition, int] = {}


class _Consumer:
    """One impression partition with data; each poll returns at most ``batch`` records of it; ``commit()``
    without offsets commits the positions, as kafka-python's does."""

    batch = 10
    log = LOG

    def __init__(self, **_: Any) -> None:
        self.positions: dict[TopicPartition, int] = {}
        self.paused: set[TopicPartition] = set()
        self.listener: Any = None
        self.owned: set[TopicPartition] = set()

    def partitions_for_topic(self, topic: str) -> set[int]:
        return {0}

    def subscribe(self, topics: list[str], listener: Any) -> None:
        self.listener = listener

    def assignment(self) -> set[TopicPartition]:
        return set(self.owned)

    def pause(self, *tps: TopicPartition) -> None:
        self.paused |= set(tps)

    def resume(self, *tps: TopicPartition) -> None:
        self.paused -= set(tps)

    def offsets_for_times(self, times: dict[TopicPartition, int]) -> dict[TopicPartition, Any]:
        @dataclass
        class Found:
            offset: int

        found = [r.offset for r in self.log if r.timestamp >= times.get(IMPRESSIONS, NOW)]
        return {tp: Found(found[0]) if tp == IMPRESSIONS and found else None for tp in times}

    def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: len(self.log) if tp == IMPRESSIONS else 0 for tp in tps}

    def committed(self, tp: TopicPartition) -> int | None:
        return COMMITTED.get(tp)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.positions[tp] = offset

    def position(self, tp: TopicPartition) -> int:
        return self.positions[tp]

    def poll(self, timeout_ms: int = 0) -> dict[TopicPartition, list[_Record]]:
        if not self.owned:
            self.owned = {TopicPartition(t, 0) for t in TOPICS}
            self.listener.on_partitions_assigned(self.owned)
            return {}
        at = self.positions[IMPRESSIONS]
        if IMPRESSIONS in self.paused or at >= len(self.log):
            return {}
        records = self.log[at : at + self.batch]
        self.positions[IMPRESSIONS] = at + len(records)
        return {IMPRESSIONS: records}

    def commit(self, offsets: dict[TopicPartition, Any] | None = None) -> None:
        if offsets is None:
            COMMITTED.update({tp: self.positions[tp] for tp in self.owned})
        else:
            COMMITTED.update({tp: meta.offset for tp, meta in offsets.items()})

    def close(self) -> None:
        pass


def _consumer(registry: CollectorRegistry, clock_ms: Any = lambda: NOW) -> feedback_consumer.FeedbackConsumer:
    return feedback_consumer.FeedbackConsumer("unused", FeedbackMetrics(registry), group_id="g", clock_ms=clock_ms)


def _counted_in_one_start(polls: int) -> float:
    registry = CollectorRegistry()
    consumer = _consumer(registry)
    for _ in range(polls):
        consumer.poll_once(timeout_ms=0)
    consumer.close()
    return (
        registry.get_sample_value(
            "profilestream_feedback_impressions_total", {"model_version": "v1", "source": "profile"}
        )
        or 0.0
    )


def test_a_restart_during_the_catch_up_counts_nothing_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(feedback_consumer, "KafkaConsumer", _Consumer)
    COMMITTED.clear()
    assert _counted_in_one_start(polls=10) == 50
    assert COMMITTED[IMPRESSIONS] == 50
    # The next start reads the window again from offset 0 and stops after one poll of ten records: it must not
    # commit offset 10, or the start after it counts forty impressions again.
    assert _counted_in_one_start(polls=3) == 0
    assert COMMITTED[IMPRESSIONS] == 50
    assert _counted_in_one_start(polls=10) == 0


def test_an_impression_from_the_future_is_refused_rather_than_held_forever(monkeypatch: pytest.MonkeyPatch) -> None:
    # Impressions are dropped oldest first; one dated decades ahead at the head held every one behind it.
    future = _Record(b"u0", _impression(1000, ts_ms=4_000_000_000_000), 0, NOW)
    monkeypatch.setattr(feedback_consumer, "KafkaConsumer", _Consumer)
    monkeypatch.setattr(_Consumer, "log", [future, *(_Record(r.key, r.value, r.offset + 1, r.timestamp) for r in LOG)])
    COMMITTED.clear()
    clock = [NOW]
    registry = CollectorRegistry()
    consumer = _consumer(registry, clock_ms=lambda: clock[0])
    for _ in range(10):
        consumer.poll_once(timeout_ms=0)
    assert consumer.join.held == 50
    clock[0] = NOW + 86_400_000  # a day on: every real impression is past the window
    consumer.poll_once(timeout_ms=0)
    assert consumer.join.held == 0
    labels = {"kind": "impression", "reason": "ts_out_of_range"}
    assert registry.get_sample_value("profilestream_feedback_rejected_records_total", labels) == 1
