"""The versioned binary codec of `UserState`; the byte layout is documented in `state.layout`.

`encode_state` writes the current format. `decode_state` reads it and every older readable format, and raises
a `StateDecodeError` subclass, never another exception, for anything else: values come from disk and from the
changelog topic, so they are untrusted input.
"""

from __future__ import annotations

import functools
import math
import struct
import zlib

import numpy as np
import numpy.typing as npt

from state.aggregates import reconciled
from state.decay import DecayedWeights, TopKind
from state.errors import CorruptStateError, StateDecodeError, TruncatedStateError, UnknownFormatVersionError
from state.events import StateEvent, event_order_key, normalise_event
from state.layout import (
    CRC_BYTES,
    FLAG_BASE_KNOWN,
    FLAG_HIDDEN_FLOAT16,
    FORMAT_V1,
    FORMAT_V2,
    FORMAT_VERSION,
    HEAD_HAS_AMOUNT,
    HEAD_HAS_CATEGORY,
    HEAD_HAS_ITEM,
    HEAD_TERMS_ESCAPE,
    HEAD_TERMS_SHIFT,
    HEAD_TYPE_MASK,
    KNOWN_FLAGS,
    MAX_STORED_AMOUNT,
    MAX_STORED_COUNT,
    MAX_STORED_TS_MS,
    MIN_STORED_TS_MS,
    MIN_VALUE_BYTES,
    READABLE_VERSIONS,
)
from state.record import AggregateState, UserState
from state.spec import StateSpec
from state.windows import BucketSeries, SeriesKind, bucket_index
from state.wire import ByteReader, ByteWriter

__all__ = [
    "FORMAT_V1",
    "FORMAT_V2",
    "FORMAT_VERSION",
    "decode_state",
    "encode_state",
    "peek_activity",
    "peek_head",
]

_DEFAULT_SPEC = StateSpec()


def encode_state(record: UserState, spec: StateSpec | None = None) -> bytes:
    """Encode `record` in the current format; the hidden vector's precision follows `spec.hidden_dtype`
    (default spec: float32). Raises ValueError for an inconsistent record (e.g. an event older than
    `first_event_ms`), which only a bug can produce."""
    float16 = (spec or _DEFAULT_SPEC).hidden_dtype == "float16"
    w = ByteWriter()
    w.u8(FORMAT_VERSION)
    w.u8((FLAG_HIDDEN_FLOAT16 if float16 else 0) | (FLAG_BASE_KNOWN if record.base_known else 0))
    w.uvarint(record.version)
    w.text(record.model_version)
    _encode_hidden(w, record.hidden, float16)
    _encode_hidden(w, record.base_hidden, float16)
    if record.base_prev_ts_ms and record.base_prev_ts_ms < record.first_event_ms:
        raise ValueError("base_prev_ts_ms is older than first_event_ms")
    w.uvarint(record.base_prev_ts_ms - record.first_event_ms + 1 if record.base_prev_ts_ms else 0)
    for position in record.positions:
        w.uvarint(position + 1)
    w.svarint(record.first_event_ms)
    w.uvarint(record.last_event_ms - record.first_event_ms)
    w.uvarint(record.event_count)
    _encode_events(w, record)
    w.uvarint(len(record.evicted_ids))
    for ts_ms, id_hash in record.evicted_ids:
        w.uvarint(record.last_event_ms - ts_ms)
        w.i64(id_hash)
    series = [s for s in record.aggregates.values() if isinstance(s, BucketSeries)]
    weights = [s for s in record.aggregates.values() if isinstance(s, DecayedWeights)]
    w.uvarint(len(series))
    for s in series:
        _encode_series(w, s, record.last_event_ms)
    w.uvarint(len(weights))
    for table in weights:
        _encode_weights(w, table, record.last_event_ms)
    w.raw(zlib.crc32(w.buf).to_bytes(CRC_BYTES, "little"))
    return bytes(w.buf)


def _encode_hidden(w: ByteWriter, hidden: npt.NDArray[np.float32], float16: bool) -> None:
    flat = np.asarray(hidden, dtype=np.float32).ravel()
    w.uvarint(flat.size)
    w.raw(flat.astype("<f2" if float16 else "<f4").tobytes())


def _encode_events(w: ByteWriter, record: UserState) -> None:
    # The hot path of every state write. An event's bytes depend on its neighbours only through the time gap to
    # its predecessor, so each event keeps its bytes for the predecessor it had (StateEvent.wire) and a write
    # joins them; an event whose predecessor changed (the window's first after an eviction, or one after an
    # out-of-order insert) gets its gap written anew.
    recent = record.recent
    w.uvarint(len(recent))
    previous_ms = record.first_event_ms
    parts: list[bytes] = []
    for event in recent:
        wire = event.wire
        if wire is None or wire[0] != previous_ms:
            wire = _event_wire(event, previous_ms)
            object.__setattr__(event, "wire", wire)
        parts.append(wire[1])
        previous_ms = event.ts_ms
    w.buf += b"".join(parts)


def _event_wire(event: StateEvent, previous_ms: int) -> tuple[int, bytes, int, int]:
    """The event's kept bytes when it follows an event at ``previous_ms`` (see `StateEvent.wire`): head and term
    count, time gap, hashes and amounts. Raises ValueError for an event older than ``previous_ms``."""
    gap = event.ts_ms - previous_ms
    if gap < 0:
        raise ValueError("the window's events are not in time order")
    gap_bytes = ByteWriter()
    gap_bytes.uvarint(gap)
    kept = event.wire
    if kept is not None:
        # Only the gap changes: the bytes around it are the event's own.
        _, data, gap_at, gap_len = kept
        return previous_ms, data[:gap_at] + gap_bytes.buf + data[gap_at + gap_len :], gap_at, len(gap_bytes.buf)
    before, after = _event_parts(event)
    return previous_ms, before + gap_bytes.buf + after, len(before), len(gap_bytes.buf)


def _event_parts(event: StateEvent) -> tuple[bytes, bytes]:
    """An event's bytes before its time gap (head, term count) and after it (hashes, amounts)."""
    before, after = ByteWriter(), ByteWriter()
    terms = event.query_terms
    n_terms = len(terms)
    price_milli = event.price_milli
    has_amount = event.quantity != 0 or price_milli != 0
    head = event.type_code & HEAD_TYPE_MASK
    hashes = [event.event_id_hash]
    if event.item_hash:
        head |= HEAD_HAS_ITEM
        hashes.append(event.item_hash)
    if event.category_hash:
        head |= HEAD_HAS_CATEGORY
        hashes.append(event.category_hash)
    head |= HEAD_HAS_AMOUNT if has_amount else 0
    head |= min(n_terms, HEAD_TERMS_ESCAPE) << HEAD_TERMS_SHIFT
    before.u8(head)
    if n_terms >= HEAD_TERMS_ESCAPE:
        before.uvarint(n_terms)
    after.i64s([*hashes, *terms] if terms else hashes)
    if has_amount:
        after.svarint(event.quantity)
        after.svarint(price_milli)
    return bytes(before.buf), bytes(after.buf)


def _encode_series(w: ByteWriter, series: BucketSeries, last_event_ms: int) -> None:
    buf = w.buf
    buf += _aggregate_head(series.kind, series.bucket_ms, series.retain_buckets)
    buckets = series.buckets
    w.uvarint(len(buckets))
    previous = bucket_index(last_event_ms, series.bucket_ms)
    for index in sorted(buckets, reverse=True):
        step = previous - index
        if 0 <= step < 0x80:  # one byte: adjacent buckets, the common case
            buf.append(step)
        else:
            w.uvarint(step)
        previous = index
        for value in buckets[index]:
            # zigzag LEB128 inline (counts and sums in thousandths: most take one to four bytes)
            rest = value * 2 if value >= 0 else -2 * value - 1
            while rest >= 0x80:
                buf.append((rest & 0x7F) | 0x80)
                rest >>= 7
            buf.append(rest)


@functools.cache
def _aggregate_head(kind: int, first: int, second: int) -> bytes:
    """The constant head of an aggregate's bytes: its kind and two parameters (a bucket series: bucket size and
    buckets kept; a weight table: half-life and capacity), made once per parameter set."""
    head = ByteWriter()
    head.u8(kind)
    head.uvarint(first)
    head.uvarint(second)
    return bytes(head.buf)


def _encode_weights(w: ByteWriter, table: DecayedWeights, last_event_ms: int) -> None:
    w.buf += _aggregate_head(table.kind, table.half_life_ms, table.capacity)
    w.svarint(last_event_ms - table.reference_ms)
    weights = table.weights
    w.uvarint(len(weights))
    if weights:
        # One packed call for every (8-byte key, 4-byte weight) pair: the same bytes as i64 then f32 for each.
        keys = sorted(weights)
        w.buf += _weight_pairs(len(keys)).pack(*[x for key in keys for x in (key, weights[key])])


@functools.cache
def _weight_pairs(count: int) -> struct.Struct:
    return struct.Struct("<" + "qf" * count)


def decode_state(data: bytes, spec: StateSpec | None = None) -> UserState:
    """Decode a stored value; a record of an older format is upgraded (see `_decode_v1`, `_decode_v2_or_v3`).

    Raises `UnknownFormatVersionError`, `TruncatedStateError` or `CorruptStateError` (all `StateDecodeError`).
    """
    try:
        return _decode(data, spec or _DEFAULT_SPEC)
    except StateDecodeError:
        raise
    except Exception as exc:  # untrusted bytes: whatever else goes wrong is corruption, never a crash
        raise CorruptStateError(f"undecodable state value: {type(exc).__name__}: {exc}") from exc


def peek_activity(data: bytes) -> tuple[int, int]:
    """``(event_count, last_event_ms)`` of a stored value, reading only the record's head.

    For scans over every user (expiry, counting): about a tenth of a full decode, no checksum check. Raises
    `StateDecodeError` for anything it cannot read.
    """
    event_count, last_event_ms, _ = peek_head(data)
    return event_count, last_event_ms


def peek_head(data: bytes) -> tuple[int, int, str]:
    """``(event_count, last_event_ms, model_version)`` of a stored value, reading only the record's head, as
    `peek_activity` does (the model version tells a scan which users a model rollout has not rebuilt yet)."""
    try:
        view = memoryview(data)
        version = view[0] if len(view) >= MIN_VALUE_BYTES else None
        if version not in (FORMAT_V2, FORMAT_VERSION):
            record = decode_state(data)
            return record.event_count, record.last_event_ms, record.model_version
        r = ByteReader(view, end=len(view) - CRC_BYTES)
        r.u8()
        flags = r.u8()
        width = 2 if flags & FLAG_HIDDEN_FLOAT16 else 4
        r.uvarint()
        model_version = r.text()
        r.raw(r.count(width) * width)
        if version == FORMAT_VERSION:
            r.raw(r.count(width) * width)
            for _ in range(1 + len(UserState().positions)):
                r.uvarint()
        first_event_ms = r.svarint()
        last_event_ms = first_event_ms + r.uvarint()
        return r.uvarint(), last_event_ms, model_version
    except StateDecodeError:
        raise
    except Exception as exc:  # untrusted bytes, as in decode_state
        raise CorruptStateError(f"unreadable record head: {type(exc).__name__}: {exc}") from exc


def _decode(data: bytes, spec: StateSpec) -> UserState:
    view = memoryview(data)
    if len(view) < MIN_VALUE_BYTES:
        raise TruncatedStateError(f"value of {len(view)} bytes is shorter than any record")
    body_end = len(view) - CRC_BYTES
    stored_crc = int.from_bytes(view[body_end:], "little")
    if zlib.crc32(view[:body_end]) != stored_crc:
        raise CorruptStateError(f"checksum mismatch (value of {len(view)} bytes, first byte {view[0]})")
    version = view[0]
    if version not in READABLE_VERSIONS:
        raise UnknownFormatVersionError(f"format version {version}; this release reads {sorted(READABLE_VERSIONS)}")
    reader = ByteReader(view, end=body_end)
    reader.u8()
    if version == FORMAT_V1:
        record = _decode_v1(reader, spec)
    else:
        record = _decode_v2_or_v3(reader, with_base=version != FORMAT_V2)
    if not reader.at_end():
        raise CorruptStateError(f"{body_end - reader.pos} unread bytes after the record")
    _check_consistent(record)
    return record


def _check_consistent(record: UserState) -> None:
    """Raise CorruptStateError for a record the worker never writes, however well-formed its bytes: one that
    would fail the fold, the encoder or the profile's JSON later (and there take other users' events with it),
    or be stored in a form that cannot be read back."""
    problem = _counts_or_vectors(record) or _times(record) or _aggregates(record)
    if problem:
        raise CorruptStateError(f"inconsistent record: {problem}")


def _counts_or_vectors(record: UserState) -> str | None:
    if record.version > MAX_STORED_COUNT or record.event_count > MAX_STORED_COUNT:
        return "version or event count beyond 64 bits"
    if any(p > MAX_STORED_COUNT for p in record.positions):
        return "input position beyond 64 bits"
    for name, vector in (("hidden", record.hidden), ("base_hidden", record.base_hidden)):
        if not np.isfinite(vector).all():
            return f"{name} vector is not finite"
    if record.hidden.size and record.base_hidden.size and record.hidden.size != record.base_hidden.size:
        return "hidden and base vectors differ in size"
    if record.event_count == 0 and (record.recent or record.evicted_ids):
        return "events without an event count"
    if len(record.recent) > record.event_count:
        return "more events in the window than counted"
    return None


def _times(record: UserState) -> str | None:
    if record.event_count == 0:
        return None
    first, last = record.first_event_ms, record.last_event_ms
    if not MIN_STORED_TS_MS <= first <= last < MAX_STORED_TS_MS:
        return "event times outside the contract's range"
    if record.recent and record.recent[-1].ts_ms > last:
        return "a window event after the newest event time"
    if record.base_prev_ts_ms and not first <= record.base_prev_ts_ms <= last:
        return "base vector time outside the user's events"
    if record.evicted_ids and (record.evicted_ids != sorted(record.evicted_ids) or record.evicted_ids[0][0] < first):
        return "remembered ids out of order or before the first event"
    return None


def _aggregates(record: UserState) -> str | None:
    for state in record.aggregates.values():
        if isinstance(state, BucketSeries):
            if any(not 0 <= v <= MAX_STORED_AMOUNT for values in state.buckets.values() for v in values):
                return "a bucket sum outside 0 to the stored maximum"
        elif state.weights:
            if not all(math.isfinite(w) and w > 0.0 for w in state.weights.values()):
                return "a weight that is not a positive finite number"
            if not MIN_STORED_TS_MS <= state.reference_ms <= record.last_event_ms:
                return "a weight table's time outside the user's events"
    return None


def _decode_hidden(r: ByteReader, float16: bool) -> npt.NDArray[np.float32]:
    width = 2 if float16 else 4
    size = r.count(width)
    raw = r.raw(size * width)
    return np.frombuffer(raw, dtype="<f2" if float16 else "<f4").astype(np.float32)


def _decode_v2_or_v3(r: ByteReader, with_base: bool) -> UserState:
    """Read a version-3 body, or a version-2 one (no base fields: the base is unknown after decoding)."""
    flags = r.u8()
    if flags & ~KNOWN_FLAGS or (not with_base and flags & FLAG_BASE_KNOWN):
        raise CorruptStateError(f"unknown flags {flags:#04x}")
    record = UserState()
    record.version = r.uvarint()
    record.model_version = r.text()
    float16 = bool(flags & FLAG_HIDDEN_FLOAT16)
    record.hidden = _decode_hidden(r, float16)
    base_prev = 0
    if with_base:
        record.base_hidden = _decode_hidden(r, float16)
        base_prev = r.uvarint()
        record.positions = [r.uvarint() - 1 for _ in range(len(record.positions))]
    record.base_known = bool(flags & FLAG_BASE_KNOWN)
    record.first_event_ms = r.svarint()
    record.base_prev_ts_ms = record.first_event_ms + base_prev - 1 if base_prev else 0
    record.last_event_ms = record.first_event_ms + r.uvarint()
    record.event_count = r.uvarint()
    previous_ms = record.first_event_ms
    for _ in range(r.count(10)):
        event = _decode_event_v2(r, previous_ms)
        previous_ms = event.ts_ms
        record.recent.append(event)
    for _ in range(r.count(9)):
        ts_ms = record.last_event_ms - r.uvarint()
        record.evicted_ids.append((ts_ms, r.i64()))
    states: list[AggregateState] = [_decode_series(r, record.last_event_ms) for _ in range(r.count(4))]
    states += [_decode_weights(r, record.last_event_ms) for _ in range(r.count(5))]
    for state in states:
        if state.signature in record.aggregates:
            raise CorruptStateError(f"aggregate {state.signature} stored twice")
        record.aggregates[state.signature] = state
    return record


def _decode_event_v2(r: ByteReader, previous_ms: int) -> StateEvent:
    head = r.u8()
    n_terms = head >> HEAD_TERMS_SHIFT
    if n_terms == HEAD_TERMS_ESCAPE:
        n_terms = r.count(8)
    ts_ms = previous_ms + r.uvarint()
    event_id_hash = r.i64()
    item_hash = r.i64() if head & HEAD_HAS_ITEM else 0
    category_hash = r.i64() if head & HEAD_HAS_CATEGORY else 0
    terms = r.i64s(n_terms)
    quantity, price_milli = (r.svarint(), r.svarint()) if head & HEAD_HAS_AMOUNT else (0, 0)
    return StateEvent(
        event_id_hash=event_id_hash,
        type_code=head & HEAD_TYPE_MASK,
        ts_ms=ts_ms,
        item_hash=item_hash,
        category_hash=category_hash,
        query_terms=terms,
        quantity=quantity,
        price=price_milli / 1000,
    )


def _decode_series(r: ByteReader, last_event_ms: int) -> BucketSeries:
    kind = SeriesKind(r.u8())
    bucket_ms = r.uvarint()
    retain_buckets = r.uvarint()
    if bucket_ms <= 0:
        raise CorruptStateError("bucket series with a zero bucket size")
    series = BucketSeries(kind, bucket_ms, retain_buckets)
    index = bucket_index(last_event_ms, bucket_ms)
    for _ in range(r.count(1 + kind.width)):
        index -= r.uvarint()
        if index in series.buckets:
            raise CorruptStateError("bucket stored twice")
        series.buckets[index] = r.svarints(kind.width)
    return series


def _decode_weights(r: ByteReader, last_event_ms: int) -> DecayedWeights:
    kind = TopKind(r.u8())
    half_life_ms = r.uvarint()
    capacity = r.uvarint()
    if half_life_ms <= 0:
        raise CorruptStateError("weight table with a zero half-life")
    table = DecayedWeights(kind, half_life_ms, capacity, reference_ms=last_event_ms - r.svarint())
    for _ in range(r.count(12)):
        key = r.i64()
        table.weights[key] = r.f32()
    return table


def _decode_v1(r: ByteReader, spec: StateSpec) -> UserState:
    """Read a version-1 body (no aggregates, no dedupe memory, float64 prices) and upgrade it.

    The upgrade keeps the newest `spec.recent_window` events in the stored form (normalised) and rebuilds the
    aggregates from them: exact for users whose whole history is in the window, a lower bound otherwise.
    """
    record = UserState(base_known=False)
    record.version = r.uvarint()
    record.model_version = r.text()
    record.hidden = _decode_hidden(r, float16=False)
    record.first_event_ms = r.svarint()
    record.last_event_ms = record.first_event_ms + r.uvarint()
    record.event_count = r.uvarint()
    previous_ms = record.first_event_ms
    events: list[StateEvent] = []
    for _ in range(r.count(35)):
        type_code = r.u8()
        ts_ms = previous_ms + r.uvarint()
        previous_ms = ts_ms
        event_id_hash, item_hash, category_hash = r.i64(), r.i64(), r.i64()
        terms = tuple(r.i64() for _ in range(r.count(8)))
        quantity = r.svarint()
        price = r.f64()
        event = StateEvent(event_id_hash, type_code, ts_ms, item_hash, category_hash, terms, quantity, price)
        events.append(normalise_event(event, spec.max_query_terms))
    events.sort(key=event_order_key)
    record.recent = events[-spec.recent_window :]
    record.aggregates = reconciled(record, spec)
    return record
