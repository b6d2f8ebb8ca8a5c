"""The record codec: lossless round trips, frozen older and current formats, typed errors for bad bytes."""

from __future__ import annotations

import contextlib
import dataclasses
import random
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from state.aggregates import is_compatible, profile_aggregates
from state.codec import FORMAT_VERSION, decode_state, encode_state, peek_activity, peek_head
from state.decay import DecayedWeights
from state.errors import CorruptStateError, StateDecodeError, TruncatedStateError, UnknownFormatVersionError
from state.events import MAX_STORED_PRICE, StateEvent, normalise_event
from state.fold import fold_event
from state.layout import MAX_STORED_AMOUNT, MAX_STORED_TS_MS, MIN_STORED_TS_MS
from state.record import UserState
from state.spec import StateSpec
from state.windows import BucketSeries
from streams.contract.events import MAX_TS_MS, MIN_TS_MS
from tests.state.strategies import DEFAULT_SPEC, SMALL_SPEC, T0_MS, Stream, fold_all, realistic_user, streams

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

hidden_vectors = st.lists(st.floats(width=32, allow_nan=False, allow_infinity=False), max_size=80).map(
    lambda xs: np.asarray(xs, dtype=np.float32)
)


def _with_crc(body: bytes) -> bytes:
    return body + zlib.crc32(body).to_bytes(4, "little")


@FAST
@given(streams(), hidden_vectors, hidden_vectors, st.booleans(), st.text(max_size=30), st.integers(0, 2**63 - 1))
def test_round_trip_is_lossless(
    stream: Stream, hidden: np.ndarray, base: np.ndarray, base_known: bool, model_version: str, version: int
) -> None:
    if hidden.size and base.size:
        base = np.resize(base, hidden.size)  # the worker's two vectors have the model's one size
    record = fold_all(stream.arrivals, stream.spec)
    record.hidden, record.model_version, record.version = hidden, model_version, version
    record.base_hidden, record.base_known = base, base_known
    record.positions = [version % 1000 - 1, -1, version % 7]
    if record.event_count:
        record.base_prev_ts_ms = record.first_event_ms
    decoded = decode_state(encode_state(record))
    assert decoded == record
    assert decoded.hidden.dtype == np.float32
    assert profile_aggregates(decoded, stream.spec) == profile_aggregates(record, stream.spec)


@FAST
@given(streams(spec=SMALL_SPEC), st.data())
def test_folding_after_a_round_trip_equals_folding_without_one(stream: Stream, data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, len(stream.arrivals)))
    direct = fold_all(stream.arrivals, stream.spec)
    resumed = decode_state(encode_state(fold_all(stream.arrivals[:cut], stream.spec)))
    assert fold_all(stream.arrivals[cut:], stream.spec, resumed) == direct


@FAST
@given(st.lists(st.floats(-60_000, 60_000, width=32), max_size=64).map(lambda xs: np.asarray(xs, np.float32)))
def test_float16_hidden_vector_is_rounded_to_float16(hidden: np.ndarray) -> None:
    record = fold_all([StateEvent(1, 0, T0_MS)], DEFAULT_SPEC)
    record.hidden = hidden
    spec16 = StateSpec(hidden_dtype="float16")
    data = encode_state(record, spec16)
    decoded = decode_state(data)
    assert decoded.hidden.dtype == np.float32
    assert np.array_equal(decoded.hidden, hidden.astype(np.float16).astype(np.float32))
    assert len(data) == len(encode_state(record)) - 2 * hidden.size


def test_values_at_the_state_limits_round_trip() -> None:
    """The largest quantity and price a StateEvent takes, and bucket sums saturated at the cap, read back."""
    events = [
        StateEvent(i, 2, T0_MS + i, item_hash=-1, quantity=MAX_STORED_AMOUNT, price=MAX_STORED_PRICE) for i in range(60)
    ]
    record = fold_all([*events, StateEvent(-1, 0, T0_MS + 3 * 86_400_000, item_hash=2**63 - 1)], DEFAULT_SPEC)
    series = [s for s in record.aggregates.values() if isinstance(s, BucketSeries)]
    assert any(MAX_STORED_AMOUNT in values for s in series for values in s.buckets.values())  # saturated
    assert decode_state(encode_state(record)) == record
    assert profile_aggregates(record, DEFAULT_SPEC)["purchase_spend_30d"] == MAX_STORED_AMOUNT / 1000


def test_new_record_round_trips() -> None:
    assert decode_state(encode_state(UserState.new())) == UserState.new()


def test_encoded_size_at_defaults_is_within_budget() -> None:
    """The goal: at most 2 KiB per user at defaults with 20 events per user, and the trained model's per-user
    state (96 floats: a 32-dim GRU plus the 64-dim recency memory; no base vector while the window holds the
    user's whole history)."""
    rng = random.Random(7)
    for span_ms in (30 * 60_000, 86_400_000, 7 * 86_400_000, 30 * 86_400_000):
        sizes = [len(encode_state(realistic_user(rng, span_ms=span_ms, hidden_dim=96))) for _ in range(50)]
        assert max(sizes) <= 2048, (span_ms, max(sizes))


# A version-1 record (the first layout): no aggregates, no dedupe memory, float64
# prices, five query terms on the search (more than today's default keeps). Frozen: never regenerate.
V1_RECORD = bytes.fromhex(
    "0107066772752d7630040000003f000080be0000003e0000803f80f086c2ee65c086e301030300006500000000000000"
    "e903000000000000d1070000000000000000000000000000000001e0d403660000000000000000000000000000000000"
    "00000000000005b90b000000000000ba0b000000000000bb0b000000000000bc0b000000000000bd0b00000000000000"
    "000000000000000002e0b1df0199ffffffffffffffe903000000000000d10700000000000000043d0ad7a370fd334017"
    "eccf1d"
)


def test_version_1_record_decodes_and_is_upgraded() -> None:
    record = decode_state(V1_RECORD)
    assert (record.version, record.model_version, record.event_count) == (7, "gru-v0", 3)
    assert record.hidden.tolist() == [0.5, -0.25, 0.125, 1.0]
    assert (record.first_event_ms, record.last_event_ms) == (T0_MS, T0_MS + 3_720_000)
    assert record.recent == [
        StateEvent(101, 0, T0_MS, item_hash=1001, category_hash=2001),
        StateEvent(102, 1, T0_MS + 60_000, query_terms=(3001, 3002, 3003, 3004)),
        StateEvent(-103, 2, T0_MS + 3_720_000, item_hash=1001, category_hash=2001, quantity=2, price=19.99),
    ]
    assert record.evicted_ids == []
    assert is_compatible(record, DEFAULT_SPEC)
    aggregates = profile_aggregates(record, DEFAULT_SPEC)
    assert aggregates["browse_count_1h"] == 0  # 62 minutes before the newest event
    assert aggregates["browse_count_24h"] == 1
    assert aggregates["purchase_count_1h"] == 1
    assert aggregates["purchase_spend_30d"] == 39.98
    # Upgraded records are written back in the current format.
    assert encode_state(record)[0] == FORMAT_VERSION
    assert decode_state(encode_state(record)) == record


def _golden_record() -> UserState:
    record = fold_all(
        [
            StateEvent(5, 0, T0_MS, item_hash=-7, category_hash=9),
            StateEvent(6, 1, T0_MS + 1_000, query_terms=(1, 2, 3, 4, 5, 6, 7, 8, 9)),
            StateEvent(4, 2, T0_MS + 90_000, item_hash=-7, category_hash=9, quantity=2, price=12.5),
        ],
        StateSpec(max_query_terms=8, recent_window=2),
    )
    record.hidden = np.asarray([1.0, -2.0], dtype=np.float32)
    record.model_version, record.version = "m", 3
    # The frozen bytes below were written when every event rescaled every weight table; the fold now leaves the
    # search-term table at its last search (the purchase adds no term). The same record, as those bytes hold it:
    for table in record.aggregates.values():
        if isinstance(table, DecayedWeights):
            table.advance(record.last_event_ms)
    return record


# Format 2, frozen: decodes, with the base hidden vector marked unknown.
V2_GOLDEN = bytes.fromhex(
    "020003016d020000803f000000c080f086c2ee6590bf050302e108e80706000000000000000100000000000000020000"
    "000000000003000000000000000400000000000000050000000000000006000000000000000700000000000000080000"
    "00000000001ea8b7050400000000000000f9ffffffffffffff090000000000000004a8c3010190bf0505000000000000"
    "000401e0d4033c02000000020202020001a0f7366001000202020180dddb01a80101000202020280b899291e010002d0"
    "860302018088b2a00210000109000000000000009ffcff3f028088b2a002100008010000000000000051f97f3f020000"
    "000000000051f97f3f030000000000000051f97f3f040000000000000051f97f3f050000000000000051f97f3f060000"
    "000000000051f97f3f070000000000000051f97f3f080000000000000051f97f3ffed7a0ff"
)


def test_format_2_decodes_with_an_unknown_base() -> None:
    record = _golden_record()
    record.base_known = False
    assert decode_state(V2_GOLDEN) == record


# The current format for a fixed record. If this fails, the layout changed: bump FORMAT_VERSION, keep a decoder
# for the old version and freeze its bytes in a test like the ones above.
V3_GOLDEN = bytes.fromhex(
    "030203016d020000803f000000c0020000003f0000803e010800ad0280f086c2ee6590bf050302e108e8070600000000"
    "000000010000000000000002000000000000000300000000000000040000000000000005000000000000000600000000"
    "000000070000000000000008000000000000001ea8b7050400000000000000f9ffffffffffffff090000000000000004"
    "a8c3010190bf0505000000000000000401e0d4033c02000000020202020001a0f7366001000202020180dddb01a80101"
    "000202020280b899291e010002d0860302018088b2a00210000109000000000000009ffcff3f028088b2a00210000801"
    "0000000000000051f97f3f020000000000000051f97f3f030000000000000051f97f3f040000000000000051f97f3f05"
    "0000000000000051f97f3f060000000000000051f97f3f070000000000000051f97f3f080000000000000051f97f3f7e"
    "97a3b8"
)


def test_current_format_is_stable() -> None:
    record = _golden_record()
    record.base_hidden = np.asarray([0.5, 0.25], dtype=np.float32)
    record.base_prev_ts_ms = T0_MS
    record.positions = [7, -1, 300]
    assert [i for _, i in record.evicted_ids] == [5]
    assert record.recent[0].query_terms == (1, 2, 3, 4, 5, 6, 7, 8)
    assert encode_state(record) == V3_GOLDEN
    assert decode_state(V3_GOLDEN) == record


def test_unknown_format_version_is_typed() -> None:
    for version in (0, FORMAT_VERSION + 1, 255):
        with pytest.raises(UnknownFormatVersionError):
            decode_state(_with_crc(bytes([version]) + b"\x00" * 10))


def test_short_values_are_truncated() -> None:
    for data in (b"", b"\x02", b"\x02\x00\x00\x00"):
        with pytest.raises(TruncatedStateError):
            decode_state(data)


def test_a_valid_checksum_over_a_short_body_is_truncated() -> None:
    data = encode_state(realistic_user(random.Random(1)))
    with pytest.raises(TruncatedStateError):
        decode_state(_with_crc(data[:40]))


def test_trailing_bytes_are_corrupt() -> None:
    data = encode_state(UserState.new())
    with pytest.raises(CorruptStateError):
        decode_state(_with_crc(data[:-4] + b"\x00"))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_raise_only_state_decode_errors(data: bytes) -> None:
    with pytest.raises(StateDecodeError):
        decode_state(data)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([1, 2]), st.binary(max_size=300))
def test_garbage_with_a_valid_checksum_never_escapes_as_another_exception(version: int, body: bytes) -> None:
    # Past the checksum the parser itself must reject garbage with a typed error (or read a valid record).
    try:
        record = decode_state(_with_crc(bytes([version]) + body))
    except StateDecodeError:
        return
    assert isinstance(record, UserState)


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_damaged_values_raise_state_decode_errors(data: st.DataObject) -> None:
    value = bytearray(encode_state(realistic_user(random.Random(data.draw(st.integers(0, 5))))))
    kind = data.draw(st.sampled_from(["flip", "cut", "splice"]))
    if kind == "flip":
        position = data.draw(st.integers(0, len(value) - 1))
        value[position] ^= data.draw(st.integers(1, 255))
    elif kind == "cut":
        value = value[: data.draw(st.integers(0, len(value) - 1))]
    else:
        position = data.draw(st.integers(0, len(value)))
        value[position:position] = data.draw(st.binary(min_size=1, max_size=20))
    with pytest.raises(StateDecodeError):
        decode_state(bytes(value))
    if len(value) > 4:
        # With a recomputed checksum the damage reaches the parser: a typed error or a record, nothing else.
        with contextlib.suppress(StateDecodeError):
            decode_state(_with_crc(bytes(value[:-4])))


def test_peek_activity_reads_the_head_of_every_readable_format() -> None:
    rng = random.Random(3)
    for record in (realistic_user(rng), realistic_user(rng, hidden_dim=96), UserState.new()):
        record.base_hidden = np.ones(8, dtype=np.float32)
        assert peek_activity(encode_state(record)) == (record.event_count, record.last_event_ms)
    for frozen in (V1_RECORD, V2_GOLDEN, V3_GOLDEN):
        decoded = decode_state(frozen)
        assert peek_activity(frozen) == (decoded.event_count, decoded.last_event_ms)
    with pytest.raises(StateDecodeError):
        peek_activity(V3_GOLDEN[:20])


def test_peek_head_also_reads_the_model_version() -> None:
    record = realistic_user(random.Random(4))
    record.model_version = "v-" + "é" * 3
    assert peek_head(encode_state(record)) == (record.event_count, record.last_event_ms, record.model_version)
    for frozen in (V1_RECORD, V2_GOLDEN, V3_GOLDEN):
        decoded = decode_state(frozen)
        assert peek_head(frozen) == (decoded.event_count, decoded.last_event_ms, decoded.model_version)


def test_an_events_kept_wire_bytes_are_the_bytes_it_encodes_to_and_never_outlive_a_change() -> None:
    """encode_state keeps each event's bytes on the event (StateEvent.wire) and reuses them at the next write:
    the second write equals a write of freshly decoded events, and a changed copy of an event starts without."""
    spec = StateSpec()
    record = UserState.new()
    long_query = tuple(range(1, 40))
    for event in [
        StateEvent(11, 0, 1_767_225_600_000, item_hash=5, category_hash=6),
        StateEvent(12, 1, 1_767_225_600_000 + 90_000, query_terms=long_query[: spec.max_query_terms]),
        StateEvent(13, 2, 1_767_225_600_000 + 10**9, item_hash=-7, quantity=3, price=12.5),
    ]:
        fold_event(record, event, spec, [])
    assert all(event.wire is None for event in record.recent)
    first = encode_state(record, spec)
    assert all(event.wire is not None for event in record.recent)
    assert encode_state(record, spec) == first
    assert encode_state(decode_state(first, spec), spec) == first
    changed = dataclasses.replace(record.recent[0], item_hash=99)
    assert changed.wire is None
    assert normalise_event(dataclasses.replace(record.recent[1]), 2).wire is None


def _encoded_without_kept_bytes(record: UserState, spec: StateSpec) -> bytes:
    """The record's bytes from copies of its events that carry no kept bytes (the reference encoding)."""
    fresh = record.copy()
    fresh.recent = [dataclasses.replace(event) for event in record.recent]
    assert all(event.wire is None for event in fresh.recent)
    return encode_state(fresh, spec)


def test_kept_event_bytes_follow_a_changed_predecessor() -> None:
    """An event's kept bytes hold its time gap to its predecessor: after an out-of-order event lands before it, or
    after its predecessor leaves the window (it becomes the first, its gap now counted from first_event_ms), the
    record still encodes to exactly the bytes of events that never kept any."""
    spec = StateSpec(recent_window=4, allowed_lateness_ms=10**9)
    record = UserState.new()
    t0 = 1_767_225_600_000
    for i, offset_ms in enumerate([0, 60_000, 120_000, 180_000]):
        fold_event(record, StateEvent(100 + i, i % 3, t0 + offset_ms, item_hash=7 + i), spec, [])
        assert encode_state(record, spec) == _encoded_without_kept_bytes(record, spec)
    # Out of order: lands between the second and third events, changing the third one's predecessor.
    fold_event(record, StateEvent(200, 0, t0 + 90_000, item_hash=9), spec, [])
    assert encode_state(record, spec) == _encoded_without_kept_bytes(record, spec)
    # In order again: the oldest leaves the window and the next one becomes the first.
    evicted: list[StateEvent] = []
    fold_event(record, StateEvent(201, 1, t0 + 240_000, query_terms=(5, 6)), spec, evicted)
    assert evicted
    assert encode_state(record, spec) == _encoded_without_kept_bytes(record, spec)
    assert decode_state(encode_state(record, spec), spec) == record


def _series(record: UserState) -> BucketSeries:
    return next(s for s in record.aggregates.values() if isinstance(s, BucketSeries) and s.buckets)


def _weights(record: UserState) -> DecayedWeights:
    return next(s for s in record.aggregates.values() if isinstance(s, DecayedWeights) and s.weights)


def _set_first_weight(record: UserState, value: float) -> None:
    table = _weights(record)
    table.weights[next(iter(table.weights))] = value


INCONSISTENT = {
    "a version beyond 64 bits": lambda r: setattr(r, "version", 2**64 - 1),
    "an event count beyond 64 bits": lambda r: setattr(r, "event_count", 2**64),
    "a position beyond 64 bits": lambda r: r.positions.__setitem__(0, 2**63),
    "a hidden vector of another size than the base": lambda r: setattr(r, "base_hidden", np.zeros(3, np.float32)),
    "a NaN in the hidden vector": lambda r: r.hidden.__setitem__(0, np.nan),
    "window events without an event count": lambda r: setattr(r, "event_count", 0),
    "fewer events counted than the window holds": lambda r: setattr(r, "event_count", len(r.recent) - 1),
    "a newest event time in the next century": lambda r: setattr(r, "last_event_ms", 2**62),
    "remembered ids out of order": lambda r: setattr(
        r, "evicted_ids", [(r.last_event_ms, 3), (r.last_event_ms - 10, 2)]
    ),
    "a negative bucket sum": lambda r: _series(r).buckets.__setitem__(next(iter(_series(r).buckets)), [-4, 0, 0]),
    "an infinite weight": lambda r: _set_first_weight(r, float("inf")),
    "a negative weight": lambda r: _set_first_weight(r, -1.0),
}


@pytest.mark.parametrize("edit", INCONSISTENT.values(), ids=INCONSISTENT.keys())
def test_a_well_formed_record_the_worker_never_writes_is_corrupt(edit: object) -> None:
    """Such a record would crash the fold, the encoder or the profile's JSON later, or be stored unreadable: it
    is refused where records are read, so the worker starts the user afresh instead (as for broken bytes)."""
    record = realistic_user(random.Random(3), n_events=80)
    record.base_hidden = record.hidden.copy()
    assert decode_state(encode_state(record)) == record
    edit(record)  # type: ignore[operator]
    with pytest.raises(CorruptStateError, match="inconsistent record"):
        decode_state(encode_state(record))


def test_the_stored_time_range_is_the_event_contracts() -> None:
    # Two copies, since state/ may not import streams/: a record's times are exactly what the contract accepts.
    assert (MIN_STORED_TS_MS, MAX_STORED_TS_MS) == (MIN_TS_MS, MAX_TS_MS)
