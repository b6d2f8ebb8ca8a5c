"""The framework-floor processor: counters the benchmark's reader parses, bad input still dead-lettered."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from bench.floor_worker import FloorProcessor
from bench.profile_fields import PROFILE_FIELDS
from state.spec import StateSpec
from streams.contract.events import BrowseEvent, encode_event
from streams.worker.encoder_runtime import EncoderRuntime
from streams.worker.metrics import WorkerMetrics
from streams.worker.processor import InboundMessage

T0 = 1_767_225_600_000


def _message(value: bytes, key: bytes, offset: int) -> InboundMessage:
    return InboundMessage("events.browse", 0, offset, key, value, "browse")


def test_floor_publishes_each_users_counters_and_dead_letters_bad_input() -> None:
    metrics = WorkerMetrics(CollectorRegistry(), process_metrics=False)
    processor = FloorProcessor(EncoderRuntime.load(None, embedding_dim=8), StateSpec(), metrics, clock_ms=lambda: T0)
    events = [BrowseEvent(event_id=f"e{i}", user_id=f"u{i % 2}", ts_ms=T0 - 100 + i, item_id="i") for i in range(5)]
    batch = [_message(encode_event(e), e.user_id.encode(), i) for i, e in enumerate(events)]
    batch.append(_message(b"{not json", b"u0", 99))
    first = processor.process(batch, state=None)  # type: ignore[arg-type]  # the floor never touches state
    second = processor.process(batch[:1], state=None)  # type: ignore[arg-type]
    assert len(first.dead_letters) == 1
    parsed = {}
    for key, value in [*first.profiles, *second.profiles]:
        found = PROFILE_FIELDS.search(value)
        assert found is not None
        parsed[key] = (int(found.group(1)), int(found.group(2)), int(found.group(3)))
    assert parsed[b"u0"] == (T0, T0 - 96, 4)  # three events, then one more; the newest event time stays
    assert parsed[b"u1"] == (T0, T0 - 97, 2)
