"""BatchProcessor without Kafka: folding, duplicates, lateness, model upgrades and failure isolation."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import numpy as np
import pytest
import torch
from prometheus_client import CollectorRegistry

import state.fold as fold_module
import streams.worker.processor as processor_module
import streams.worker.profile_builder as profile_builder
from models.checkpoint import model_version, untrained_model
from models.encoder import EncoderConfig
from state.codec import decode_state, encode_state
from state.events import StateEvent
from state.record import UserState
from state.record_cache import RecordCache
from state.spec import StateSpec
from streams.bridge import to_model_input, to_state_event
from streams.contract.events import BrowseEvent, Event, SearchEvent, encode_event
from streams.contract.profile import ProfileUpdated
from streams.worker.encoder_runtime import EncoderRuntime
from streams.worker.metrics import WorkerMetrics
from streams.worker.processor import BatchProcessor, InboundMessage, StateUnavailableError

T0 = 1_767_225_600_000
SPEC = StateSpec()


class DictState:
    """StateAccess on a dict; ``broken`` users raise on load, like a store failing for one key."""

    def __init__(self, broken: frozenset[str] = frozenset()) -> None:
        self.records: dict[str, bytes] = {}
        self.broken = broken

    def load(self, user_id: str, message: InboundMessage) -> bytes | None:
        if user_id in self.broken:
            raise RuntimeError("store failure")
        return self.records.get(user_id)

    def store(self, user_id: str, message: InboundMessage, value: bytes) -> None:
        self.records[user_id] = value


def _encoder(seed: int) -> EncoderRuntime:
    model = untrained_model(EncoderConfig(embedding_dim=8, hidden_dim=8), seed)
    return EncoderRuntime(model, model_version(model))


def _message(event: Event, offset: int = 0, token: Hashable = None) -> InboundMessage:
    return InboundMessage(
        topic=f"events.{event.type}",
        partition=0,
        offset=offset,
        key=event.user_id.encode(),
        value=encode_event(event),
        topic_type=event.type,
        token=token,
    )


def _browse(user: str, i: int, ts_ms: int) -> BrowseEvent:
    return BrowseEvent(event_id=f"{user}-{i}", user_id=user, ts_ms=ts_ms, item_id=f"item-{i % 7}", category="c")


def _processor(encoder: EncoderRuntime) -> tuple[BatchProcessor, CollectorRegistry]:
    registry = CollectorRegistry()
    return BatchProcessor(encoder, SPEC, WorkerMetrics(registry, process_metrics=False), clock_ms=lambda: T0), registry


def _profiles(output_profiles: list[tuple[bytes, bytes]]) -> dict[str, ProfileUpdated]:
    return {key.decode(): ProfileUpdated.from_bytes(value) for key, value in output_profiles}


def test_one_profile_per_user_and_batch_with_every_event_folded_once() -> None:
    processor, registry = _processor(_encoder(1))
    state = DictState()
    events = [_browse(f"u{i % 3}", i, T0 + i) for i in range(12)]
    first = processor.process([_message(e, i) for i, e in enumerate(events)], state)
    profiles = _profiles(first.profiles)
    assert sorted(profiles) == ["u0", "u1", "u2"]
    assert all(p.event_count == 4 and p.version == 1 for p in profiles.values())
    # A replay of the same batch (Kafka redelivers after a crash) folds nothing; since the crash may have come
    # between the state change and its profile, each user's stored profile goes out again, under a new version.
    again = processor.process([_message(e, i) for i, e in enumerate(events)], state)
    assert again.dead_letters == []
    assert registry.get_sample_value("profilestream_events_duplicate_total") == 12
    republished = _profiles(again.profiles)
    assert sorted(republished) == ["u0", "u1", "u2"]
    for user, profile in republished.items():
        assert (profile.version, profile.event_count) == (2, 4)
        assert profile.last_event_ts_ms == profiles[user].last_event_ts_ms
        assert np.max(np.abs(np.array(profile.embedding) - np.array(profiles[user].embedding))) < 1e-6
        assert decode_state(state.records[user], SPEC).version == 2
    assert registry.get_sample_value("profilestream_profiles_republished_total") == 3
    # The same events sent again by a producer (new offsets, same event ids) are dropped by their ids.
    resent = processor.process([_message(e, 100 + i) for i, e in enumerate(events)], state)
    assert resent.profiles == []
    assert registry.get_sample_value("profilestream_events_duplicate_total") == 24


def test_a_redelivery_older_than_the_event_id_memory_is_still_a_duplicate() -> None:
    """A hot user can have far more events in a redelivered range than the bounded event-id memory holds."""
    spec = StateSpec(recent_window=5, dedupe_ids=3)
    registry = CollectorRegistry()
    processor = BatchProcessor(_encoder(1), spec, WorkerMetrics(registry, process_metrics=False), clock_ms=lambda: T0)
    state = DictState()
    events = [_browse("hot", i, T0 + i) for i in range(40)]
    first = processor.process([_message(e, i) for i, e in enumerate(events)], state)
    assert _profiles(first.profiles)["hot"].event_count == 40
    replay = processor.process([_message(e, i) for i, e in enumerate(events)], state)
    [(_, value)] = replay.profiles  # published again, nothing folded
    assert (ProfileUpdated.from_bytes(value).event_count, ProfileUpdated.from_bytes(value).version) == (40, 2)
    assert registry.get_sample_value("profilestream_events_duplicate_total") == 40


def test_too_late_events_go_to_the_dead_letter_topic_from_the_fold_stage() -> None:
    processor, _ = _processor(_encoder(1))
    state = DictState()
    processor.process([_message(_browse("u", 1, T0))], state)
    output = processor.process([_message(_browse("u", 2, T0 - 2 * SPEC.allowed_lateness_ms), offset=1)], state)
    assert output.profiles == []
    [letter] = output.dead_letters
    assert (letter.stage, letter.reason.value) == ("fold", "too_late")


def test_a_model_upgrade_rebuilds_the_hidden_vector_from_the_stored_window() -> None:
    old, new = _encoder(1), _encoder(2)
    assert old.model_version != new.model_version
    state = DictState()
    history: list[Event] = [_browse("u", i, T0 + 1000 * i) for i in range(5)]
    history.append(SearchEvent(event_id="u-s", user_id="u", ts_ms=T0 + 9000, query="Red Shoes"))
    processor_old, _ = _processor(old)
    processor_old.process([_message(e, i) for i, e in enumerate(history)], state)

    processor_new, registry = _processor(new)
    latest = _browse("u", 99, T0 + 20_000)
    output = processor_new.process([_message(latest, 10)], state)
    profile = _profiles(output.profiles)["u"]
    assert registry.get_sample_value("profilestream_model_rebuilds_total") == 1
    assert profile.model_version == new.model_version
    assert (profile.event_count, profile.version) == (7, 2)
    # The rebuilt profile is the new model's encoding of the whole stored window, the new event included.
    window = [to_model_input(to_state_event(e, SPEC.max_query_terms)) for e in [*history, latest]]
    with torch.inference_mode():
        expected = new.model.encode(window).numpy()
    assert np.max(np.abs(np.array(profile.embedding) - expected)) < 1e-5
    assert decode_state(state.records["u"], SPEC).model_version == new.model_version


def test_an_unreadable_record_is_counted_and_replaced_by_a_fresh_one() -> None:
    processor, registry = _processor(_encoder(1))
    state = DictState()
    state.records["u"] = b"\x00garbage"
    output = processor.process([_message(_browse("u", 1, T0))], state)
    assert _profiles(output.profiles)["u"].event_count == 1
    assert registry.get_sample_value("profilestream_state_decode_errors_total") == 1


def test_a_store_that_cannot_be_read_is_an_infrastructure_fault_not_bad_input() -> None:
    processor, registry = _processor(_encoder(1))
    state = DictState(broken=frozenset({"bad"}))
    events = [_browse("good", 2, T0), _browse("bad", 1, T0)]
    with pytest.raises(StateUnavailableError):
        processor.process([_message(e, i) for i, e in enumerate(events)], state)
    assert registry.get_sample_value("profilestream_events_rejected_total", {"reason": "processing_error"}) in (None, 0)


def test_a_failure_for_one_user_dead_letters_that_user_only(monkeypatch: pytest.MonkeyPatch) -> None:
    processor, registry = _processor(_encoder(1))
    state = DictState()
    real_fold = fold_module.fold_event

    def fold_failing_for_bad(record: UserState, event: StateEvent, *args: Any) -> Any:
        if event.event_id_hash in bad_ids:
            raise ValueError("a bug in the fold")
        return real_fold(record, event, *args)

    monkeypatch.setattr(processor_module, "fold_event", fold_failing_for_bad)
    events = [_browse("bad", 1, T0), _browse("good", 2, T0), _browse("bad", 3, T0 + 1)]
    bad_ids = {to_state_event(e, SPEC.max_query_terms).event_id_hash for e in events if e.user_id == "bad"}
    output = processor.process([_message(e, i) for i, e in enumerate(events)], state)
    assert list(_profiles(output.profiles)) == ["good"]
    assert sorted(letter.message.offset for letter in output.dead_letters) == [0, 2]
    assert {letter.reason.value for letter in output.dead_letters} == {"processing_error"}
    assert registry.get_sample_value("profilestream_events_rejected_total", {"reason": "processing_error"}) == 2


def _failing_for(user: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """build_profile raises for ``user`` alone, as a bug or a record no check foresaw would."""
    real = profile_builder.build_profile

    def build(user_id: str, *args: Any) -> Any:
        if user_id == user:
            raise ValueError("a record the profile cannot be built from")
        return real(user_id, *args)

    monkeypatch.setattr(processor_module, "build_profile", build)


def test_an_encode_failure_for_one_user_dead_letters_that_users_new_events_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = [_message(_browse("good", 1, T0), 0), _message(_browse("bad", 2, T0), 1)]
    late = _browse("bad", 5, T0 - 2 * SPEC.allowed_lateness_ms)  # dead-lettered as too late, and only as that
    second = [_message(_browse("good", 3, T0 + 1), 2), _message(_browse("bad", 4, T0 + 5), 3), _message(late, 4)]
    # The reference: the same units without the bad user.
    reference, _ = _processor(_encoder(1))
    reference_state = DictState()
    reference.process(first[:1], reference_state)
    expected = _profiles(reference.process(second[:1], reference_state).profiles)["good"]

    processor, registry = _processor(_encoder(1))
    state = DictState()
    processor.process(first, state)
    _failing_for("bad", monkeypatch)
    output = processor.process(second, state)

    profiles = _profiles(output.profiles)
    assert list(profiles) == ["good"]
    # Folded once, as without the failure next to it: the slice's failed call did not advance its vectors (a
    # second step would move the embedding by far more than the parity bound; a batch of one rounds differently).
    assert profiles["good"].version == expected.version
    assert np.max(np.abs(np.array(profiles["good"].embedding) - np.array(expected.embedding))) <= 1e-5
    assert decode_state(state.records["good"], SPEC).event_count == 2
    letters = sorted((letter.message.offset, letter.reason.value) for letter in output.dead_letters)
    assert letters == [(3, "processing_error"), (4, "too_late")]
    assert registry.get_sample_value("profilestream_events_rejected_total", {"reason": "processing_error"}) == 1
    assert decode_state(state.records["bad"], SPEC).event_count == 1  # its stored record as it was


def test_a_failure_republishing_one_redelivered_user_costs_nothing_else(monkeypatch: pytest.MonkeyPatch) -> None:
    processor, _ = _processor(_encoder(1))
    state = DictState()
    messages = [_message(_browse(u, i, T0 + i), i) for i, u in enumerate(["good", "bad"])]
    processor.process(messages, state)
    processor.forget()  # a restart: Kafka delivers both again, the records say they were folded
    _failing_for("bad", monkeypatch)
    output = processor.process(messages, state)
    assert list(_profiles(output.profiles)) == ["good"] and output.dead_letters == []
    assert _profiles(output.profiles)["good"].version == 2
    assert decode_state(state.records["bad"], SPEC).version == 1  # untouched: its profile goes with its next event


def test_a_record_whose_hidden_vector_is_not_the_models_size_is_rebuilt_from_its_window() -> None:
    encoder = _encoder(1)
    processor, _ = _processor(encoder)
    state = DictState()
    processor.process([_message(_browse("u", 1, T0), 0)], state)
    record = decode_state(state.records["u"], SPEC)
    record.hidden, record.base_hidden = np.zeros(3, np.float32), np.zeros(0, np.float32)
    state.records["u"] = encode_state(record, SPEC)
    processor.forget()
    output = processor.process([_message(_browse("u", 2, T0 + 1), 1)], state)
    assert output.dead_letters == []
    assert decode_state(state.records["u"], SPEC).hidden.size == encoder.hidden_dim


@pytest.mark.parametrize("fresh", [True, False])
def test_profiles_carry_the_aggregates_of_the_stored_record(fresh: bool) -> None:
    processor, _ = _processor(_encoder(1))
    state = DictState()
    if not fresh:
        state.records["u"] = encode_state(UserState.new(), SPEC)
    output = processor.process([_message(_browse("u", 1, T0))], state)
    aggregates = _profiles(output.profiles)["u"].aggregates
    assert aggregates["browse_count_1h"] == 1
    assert aggregates["purchase_count_30d"] == 0


def test_events_arriving_out_of_order_fold_as_if_in_event_order() -> None:
    """The three input topics are consumed independently, so a user's events can arrive out of order across
    batches. The profile must still equal the model's encoding of the events in event-time order, also once
    the history is longer than the recent window (the base vector carries what left it)."""
    spec = StateSpec(recent_window=5)
    encoder = _encoder(3)
    registry = CollectorRegistry()
    processor = BatchProcessor(encoder, spec, WorkerMetrics(registry, process_metrics=False), clock_ms=lambda: T0)
    state = DictState()
    events: list[Event] = [_browse("u", i, T0 + 1000 * i) for i in range(24)]
    events[7] = SearchEvent(event_id="u-search", user_id="u", ts_ms=T0 + 7000, query="blue lamp")
    # Arrival order: each pair swapped, and batches that cut between the two events of a pair.
    arrivals = [events[i + 1 - j] for i in range(0, 24, 2) for j in range(2)]
    batches = [arrivals[:1]] + [arrivals[k : k + 2] for k in range(1, 24, 2)]
    profile = None
    offsets = {id(e): n for n, e in enumerate(arrivals)}  # offsets follow arrival order, as in Kafka
    for batch in batches:
        output = processor.process([_message(e, offsets[id(e)]) for e in batch], state)
        profile = _profiles(output.profiles).get("u", profile)
    assert profile is not None and profile.event_count == 24
    with torch.inference_mode():
        expected = encoder.model.encode([to_model_input(to_state_event(e, spec.max_query_terms)) for e in events])
    assert np.max(np.abs(np.array(profile.embedding) - expected.numpy())) < 1e-5
    record = decode_state(state.records["u"], spec)
    assert len(record.recent) == 5 and record.base_known and record.base_hidden.size == 8


def _mixed_batches(seed: int) -> list[list[InboundMessage]]:
    """Batches of three users' events with redeliveries, producer resends and out-of-order arrivals."""
    rng = np.random.default_rng(seed)
    events = [_browse(f"u{int(rng.integers(3))}", i, T0 + int(rng.integers(0, 5_000))) for i in range(90)]
    messages = [_message(e, i) for i, e in enumerate(events)]
    batches = [messages[i : i + 15] for i in range(0, 90, 15)]
    batches.insert(3, messages[10:25])  # a redelivery after a crash
    batches.append([_message(e, 500 + i) for i, e in enumerate(events[:5])])  # resent by a producer
    return batches


def test_the_record_cache_changes_nothing_but_the_number_of_store_reads() -> None:
    outputs: dict[bool, tuple[list[list[tuple[bytes, bytes]]], dict[str, bytes], CollectorRegistry]] = {}
    for cached in (False, True):
        registry = CollectorRegistry()
        processor = BatchProcessor(
            _encoder(1),
            SPEC,
            WorkerMetrics(registry, process_metrics=False),
            clock_ms=lambda: T0,
            cache=RecordCache(100 if cached else 0),
        )
        state = DictState()
        published = [processor.process(batch, state).profiles for batch in _mixed_batches(5)]
        outputs[cached] = (published, state.records, registry)
    assert outputs[True][0] == outputs[False][0]
    assert outputs[True][1] == outputs[False][1]
    uncached_reads = outputs[False][2].get_sample_value("profilestream_state_reads_total")
    cached_reads = outputs[True][2].get_sample_value("profilestream_state_reads_total")
    hits = outputs[True][2].get_sample_value("profilestream_state_cache_hits_total")
    assert cached_reads is not None and uncached_reads is not None and hits is not None
    assert cached_reads < uncached_reads and hits > 0
    assert cached_reads + hits == uncached_reads


def test_a_user_with_nothing_to_store_or_a_failed_fold_leaves_the_cache() -> None:
    registry = CollectorRegistry()
    cache = RecordCache(10)
    processor = BatchProcessor(
        _encoder(1), SPEC, WorkerMetrics(registry, process_metrics=False), clock_ms=lambda: T0, cache=cache
    )
    state = DictState()
    batch = [_message(_browse("u", i, T0 + i), i) for i in range(3)]
    processor.process(batch, state)
    assert cache.get("u") is not None
    # A producer's resend (new offsets, same event ids) folds nothing: the user's record is not stored, so the
    # cache must not keep a changed copy.
    processor.process([_message(_browse("u", i, T0 + i), 100 + i) for i in range(3)], state)
    assert cache.get("u") is None
    # A redelivery (same offsets) stores the record under a new version: the cache holds that one.
    processor.process(batch, state)
    cached = cache.get("u")
    assert cached is not None and cached.version == decode_state(state.records["u"], SPEC).version == 2
    processor.process([_message(_browse("u", 9, T0 + 9), 9)], state)
    assert cache.get("u") is not None
    state.broken = frozenset({"v"})
    with pytest.raises(StateUnavailableError):
        processor.process([_message(_browse("v", 1, T0), 1)], state)
    assert cache.get("v") is None
    processor.forget(["u"])
    assert cache.get("u") is None


def test_folding_in_slices_yields_between_users_and_changes_nothing_else() -> None:
    """A unit folded in slices (the worker lets its event loop run between them) gives the records and profiles
    of the unit folded in one go; a user's events are never split across slices."""
    events = [_browse(f"u{i % 7}", i, T0 + i) for i in range(70)]  # 7 users, 10 events each
    messages = [_message(e, i) for i, e in enumerate(events)]
    whole_state, sliced_state = DictState(), DictState()
    whole = _processor(_encoder(3))[0].process(messages, whole_state)

    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry, process_metrics=False)
    sliced = BatchProcessor(_encoder(3), SPEC, metrics, clock_ms=lambda: T0, slice_events=25)
    output = processor_module.BatchOutput()
    decoded = sliced.decode(messages, output)
    stored_at_each_yield = []
    for _ in sliced.fold_in_slices(decoded, sliced_state, output):
        stored_at_each_yield.append(len(sliced_state.records))

    # 25 events a slice: three users (30 events) in each of the first two slices, the last user alone.
    assert stored_at_each_yield == [3, 6]
    # Equal but for the last bits of the vectors: a batched GRU step rounds differently in a smaller batch.
    assert sorted(sliced_state.records) == sorted(whole_state.records)
    for user, value in sliced_state.records.items():
        got, want = decode_state(value, SPEC), decode_state(whole_state.records[user], SPEC)
        assert np.allclose(got.hidden, want.hidden, atol=1e-6)
        got.hidden = want.hidden
        assert encode_state(got, SPEC) == whole_state.records[user]
    got_profiles, want_profiles = _profiles(output.profiles), _profiles(whole.profiles)
    assert sorted(got_profiles) == sorted(want_profiles)
    for user, profile in got_profiles.items():
        assert np.allclose(profile.embedding, want_profiles[user].embedding, atol=1e-6)
        assert (profile.version, profile.event_count, profile.aggregates) == (
            want_profiles[user].version,
            10,
            want_profiles[user].aggregates,
        )
    # One unit for the metrics, however many slices it ran in.
    assert registry.get_sample_value("profilestream_batch_size_events_count") == 1


def test_a_unit_retried_after_a_later_slice_failed_is_counted_once() -> None:
    """The worker folds a unit again from the start when a store read fails in a later slice, discarding what
    the attempt staged; the writes, latencies and duplicates of its earlier slices count once."""
    events = [_browse(f"u{i % 7}", i, T0 + i) for i in range(70)]  # 7 users, 10 events each
    events.append(events[0])  # a duplicate, in the first slice
    messages = [_message(e, i) for i, e in enumerate(events)]
    registry = CollectorRegistry()
    processor = BatchProcessor(
        _encoder(3), SPEC, WorkerMetrics(registry, process_metrics=False), clock_ms=lambda: T0, slice_events=25
    )
    state = DictState(broken=frozenset({"u6"}))  # the last slice's user: two slices are done when it fails
    first_try = processor_module.BatchOutput()
    decoded = processor.decode(messages, first_try)
    slices_done = 0
    with pytest.raises(StateUnavailableError):
        for _ in processor.fold_in_slices(decoded, state, first_try):
            slices_done += 1
    assert slices_done == 2 and len(state.records) == 6
    # What the worker does on such a failure: forget the attempt, retry once the store answers.
    state.records.clear()
    state.broken = frozenset()
    processor.forget()
    output = processor_module.BatchOutput()
    processor.fold(decoded, state, output)

    assert len(state.records) == 7 and len(output.profiles) == 7
    sample = registry.get_sample_value
    assert sample("profilestream_state_writes_total") == 7
    assert len(output.event_times_ms) == 70  # the worker observes their latency once the profiles are delivered
    assert sample("profilestream_events_duplicate_total") == 1
    assert sample("profilestream_batch_size_events_count") == 1  # the failed attempt is not a unit
