"""The one way from a record to a profile: the batch path and the lookup agree, and a record of another model
version is re-encoded from its window, never projected through the wrong head (equal and different hidden sizes)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from prometheus_client import CollectorRegistry

from models.checkpoint import model_version, untrained_model
from models.encoder import EncoderConfig
from state.codec import decode_state
from state.spec import StateSpec
from streams.bridge import to_model_input
from streams.contract.events import BrowseEvent, SearchEvent, encode_event
from streams.contract.profile import ProfileUpdated
from streams.worker.encoder_runtime import EncoderRuntime
from streams.worker.metrics import WorkerMetrics
from streams.worker.processor import BatchProcessor, InboundMessage
from streams.worker.profile_builder import current_profile, current_records, is_current

T0 = 1_767_225_600_000
SPEC = StateSpec(recent_window=6)


class DictState:
    def __init__(self) -> None:
        self.records: dict[str, bytes] = {}

    def load(self, user_id: str, message: InboundMessage) -> bytes | None:
        return self.records.get(user_id)

    def store(self, user_id: str, message: InboundMessage, value: bytes) -> None:
        self.records[user_id] = value


def _encoder(seed: int, hidden: int) -> EncoderRuntime:
    model = untrained_model(EncoderConfig(embedding_dim=8, hidden_dim=hidden), seed)
    return EncoderRuntime(model, model_version(model))


def _messages(user: str, n: int) -> list[InboundMessage]:
    out = []
    for i in range(n):
        event = (
            SearchEvent(event_id=f"{user}-{i}", user_id=user, ts_ms=T0 + i * 1000, query=f"red shoes {i}")
            if i % 3 == 2
            else BrowseEvent(event_id=f"{user}-{i}", user_id=user, ts_ms=T0 + i * 1000, item_id=f"i{i % 5}")
        )
        out.append(InboundMessage(f"events.{event.type}", 0, i, user.encode(), encode_event(event), event.type))
    return out


def _published(encoder: EncoderRuntime, users: dict[str, int]) -> tuple[DictState, dict[str, ProfileUpdated]]:
    """Run the worker's batch path over some users' events (in two batches); the store and the last profiles."""
    processor = BatchProcessor(
        encoder, SPEC, WorkerMetrics(CollectorRegistry(), process_metrics=False), clock_ms=lambda: T0
    )
    state = DictState()
    profiles: dict[str, ProfileUpdated] = {}
    for half in (0, 1):
        batch = []
        for user, n in users.items():
            messages = _messages(user, n)
            batch += messages[: n // 2] if half == 0 else messages[n // 2 :]
        for key, value in processor.process(batch, state).profiles:
            profiles[key.decode()] = ProfileUpdated.from_bytes(value)
    return state, profiles


def test_the_lookup_of_a_current_record_is_the_published_profile() -> None:
    encoder = _encoder(1, 8)
    state, published = _published(encoder, {"a": 3, "b": 14})
    for user, raw in state.records.items():
        looked_up = current_profile(raw, user, encoder, SPEC, now_ms=T0)
        # One rounding step of the published 7 decimals apart at most (a batched call versus one row).
        assert np.max(np.abs(np.array(looked_up.embedding) - np.array(published[user].embedding))) <= 2e-7
        assert replace(looked_up, embedding=[]) == replace(published[user], embedding=[])


@pytest.mark.parametrize("new_hidden", [8, 16], ids=["same-hidden-size", "other-hidden-size"])
def test_a_record_of_another_model_is_re_encoded_from_its_window(new_hidden: int) -> None:
    old, new = _encoder(1, 8), _encoder(2, new_hidden)
    assert old.model_version != new.model_version
    state, published = _published(old, {"a": 3, "b": 14})
    for user, raw in state.records.items():
        record = decode_state(raw, SPEC)
        assert not is_current(record, new)
        looked_up = current_profile(raw, user, new, SPEC, now_ms=T0)
        # Labelled with the model that made the vector, and equal to that model's encode of the stored window:
        # what the worker publishes when it rebuilds the user at the next event.
        assert looked_up.model_version == new.model_version
        with torch.inference_mode():
            expected = new.model.encode([to_model_input(e) for e in record.recent]).numpy()
        assert np.max(np.abs(np.array(looked_up.embedding) - expected)) <= 1e-6
        # Never the old hidden vector through the new head: that would differ.
        assert np.max(np.abs(np.array(looked_up.embedding) - np.array(published[user].embedding))) > 1e-3
        assert (looked_up.version, looked_up.event_count, looked_up.aggregates) == (
            published[user].version,
            published[user].event_count,
            published[user].aggregates,
        )
        # The stored record is left as it was: the lookup is read-only.
        assert decode_state(raw, SPEC) == record


def test_the_lookup_equals_what_the_new_model_publishes_at_the_rebuild() -> None:
    """The worker's REBUILD and the lookup re-encode the same window the same way."""
    old, new = _encoder(1, 8), _encoder(2, 16)
    state, _ = _published(old, {"a": 4})
    looked_up = current_profile(state.records["a"], "a", new, SPEC, now_ms=T0)
    processor = BatchProcessor(
        new, SPEC, WorkerMetrics(CollectorRegistry(), process_metrics=False), clock_ms=lambda: T0
    )
    # A redelivered message is a duplicate, but a record of an old model is still rebuilt and published.
    again = processor.process(_messages("a", 4)[-1:], state)
    [(_, value)] = again.profiles
    rebuilt = ProfileUpdated.from_bytes(value)
    assert rebuilt.model_version == looked_up.model_version == new.model_version
    assert np.max(np.abs(np.array(rebuilt.embedding) - np.array(looked_up.embedding))) <= 1e-6


def test_mixed_records_in_one_call_keep_their_order() -> None:
    old, new = _encoder(1, 8), _encoder(2, 8)
    old_state, _ = _published(old, {"a": 3})
    new_state, _ = _published(new, {"b": 5})
    records = [decode_state(new_state.records["b"], SPEC), decode_state(old_state.records["a"], SPEC)]
    out = current_records(records, new)
    assert [r.event_count for r, _ in out] == [5, 3]
    assert all(r.model_version == new.model_version for r, _ in out)
    assert out[0][0] is records[0]
