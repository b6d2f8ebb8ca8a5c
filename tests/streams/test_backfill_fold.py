"""The backfill's fold without a broker: whole users per batch, repeated event ids dropped, no input positions,
and the worker's records and profiles."""

from __future__ import annotations

from collections import Counter

import numpy as np
from prometheus_client import CollectorRegistry

from models.checkpoint import model_version, untrained_model
from models.encoder import EncoderConfig
from state.codec import decode_state
from state.spec import StateSpec
from streams.contract.events import encode_event
from streams.contract.profile import ProfileUpdated
from streams.offline.histories import ReadReport
from streams.worker.backfill import HistoryFolder, fold_batches, user_batches
from streams.worker.encoder_runtime import EncoderRuntime
from streams.worker.metrics import WorkerMetrics
from streams.worker.processor import BatchOutput, BatchProcessor, InboundMessage
from tests.harness import demo_events

SPEC = StateSpec(recent_window=8)


class DictState:
    def __init__(self) -> None:
        self.records: dict[str, bytes] = {}

    def load(self, user_id: str, message: InboundMessage) -> bytes | None:
        return self.records.get(user_id)

    def store(self, user_id: str, message: InboundMessage, value: bytes) -> None:
        self.records[user_id] = value


def _encoder() -> EncoderRuntime:
    model = untrained_model(EncoderConfig(embedding_dim=8, hidden_dim=8), 5)
    return EncoderRuntime(model, model_version(model))


def test_batches_hold_whole_users_and_drop_repeated_event_ids() -> None:
    events = demo_events(users=12, count=300, seed=3)
    report = ReadReport()
    batches = list(user_batches([*events, *events[:7]], 40, report))
    assert report.duplicates == 7
    owners = Counter(user for batch in batches for user in {e.user_id for e in batch})
    assert set(owners.values()) == {1}
    assert sum(map(len, batches)) == len(events)


def test_a_backfilled_record_equals_the_streamed_one_but_for_positions_and_version() -> None:
    events = demo_events(users=6, count=240, seed=4)
    encoder = _encoder()
    folder = HistoryFolder(encoder, SPEC, partitions=4, clock_ms=lambda: 0)
    output = BatchOutput()
    records = folder.fold(list(events), output)
    streamed = DictState()
    processor = BatchProcessor(encoder, SPEC, WorkerMetrics(CollectorRegistry(), process_metrics=False))
    for start in range(0, len(events), 30):
        batch = events[start : start + 30]
        processor.process(
            [
                InboundMessage(f"events.{e.type}", 0, start + i, e.user_id.encode(), encode_event(e), e.type)
                for i, e in enumerate(batch)
            ],
            streamed,
        )
    assert sorted(records) == sorted(streamed.records)
    for user, raw in records.items():
        backfilled, reference = decode_state(raw, SPEC), decode_state(streamed.records[user], SPEC)
        assert backfilled.positions == [-1, -1, -1]
        assert backfilled.version == 1
        assert np.max(np.abs(backfilled.hidden - reference.hidden)) <= 1e-5
        assert backfilled.base_hidden.shape == reference.base_hidden.shape
        assert np.max(np.abs(backfilled.base_hidden - reference.base_hidden), initial=0.0) <= 1e-5
        backfilled.hidden, backfilled.base_hidden = reference.hidden, reference.base_hidden
        backfilled.positions, backfilled.version = reference.positions, reference.version
        assert backfilled == reference
    profiles = {key.decode(): ProfileUpdated.from_bytes(value) for key, value in output.profiles}
    assert {u: p.event_count for u, p in profiles.items()} == dict(Counter(e.user_id for e in events))


def test_fold_processes_give_the_same_records_and_profiles() -> None:
    events = demo_events(users=30, count=600, seed=6)
    encoder = _encoder()
    batches = list(user_batches(events, 100, ReadReport()))
    alone = list(fold_batches(batches, encoder, SPEC, 4))
    parallel = list(fold_batches(batches, encoder, SPEC, 4, processes=2))
    assert len(alone) == len(parallel) == len(batches)
    for (records_a, profiles_a, rejected_a), (records_b, profiles_b, rejected_b) in zip(alone, parallel, strict=True):
        assert sorted(records_a) == sorted(records_b) and rejected_a == rejected_b == 0
        for user, raw in records_a.items():
            # Equal but for float rounding: the fold processes run one torch thread, this one maybe more.
            a, b = decode_state(raw, SPEC), decode_state(records_b[user], SPEC)
            assert np.max(np.abs(a.hidden - b.hidden)) <= 1e-6
            a.hidden, a.base_hidden = b.hidden, b.base_hidden
            assert a == b
        assert [k for k, _ in profiles_a] == [k for k, _ in profiles_b]
        for (_, value_a), (_, value_b) in zip(profiles_a, profiles_b, strict=True):
            pa, pb = ProfileUpdated.from_bytes(value_a), ProfileUpdated.from_bytes(value_b)
            assert np.max(np.abs(np.array(pa.embedding) - np.array(pb.embedding))) <= 1e-6
            assert pa.event_count == pb.event_count
