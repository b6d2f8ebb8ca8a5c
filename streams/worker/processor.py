"""The worker's batch logic, free of Faust: decode a micro-batch, fold it into per-user state, run one batched
encoder call, and say what to publish.

The worker's fold loop (:mod:`streams.worker.app`) hands messages in and carries the output to Kafka; the state
store is reached through :class:`StateAccess`, which lets the worker pin each user's reads and writes to the
partition that owns the user.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

import numpy as np

from models.features import EventFields
from state.codec import decode_state, encode_state
from state.errors import StateDecodeError
from state.events import StateEvent, event_order_key
from state.fold import FoldOutcome, fold_event
from state.record import UserState, empty_hidden
from state.record_cache import RecordCache
from state.spec import StateSpec
from streams.bridge import to_state_event
from streams.contract.decoder import Reason, Rejection, decode_event
from streams.contract.events import Event
from streams.worker.encoder_runtime import EncoderRuntime, embedding_rows
from streams.worker.metrics import StepKind, WorkerMetrics
from streams.worker.profile_builder import build_profile, current_records

log = logging.getLogger(__name__)

SLICE_EVENTS = 500
"""About how many events :meth:`BatchProcessor.fold_in_slices` folds between two yields: at ~0.3 ms an event
(one event per user, the dearest case) a slice takes ~150 ms, while its fixed cost (one encoder call, ~2 ms) stays
under 2 %. The unit's other stages (staging the changelog, the store write, publishing) are not sliced."""

NO_POSITION = -1
"""The offset of an :class:`InboundMessage` that never was on an input topic (a backfilled history event)."""


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """One Kafka message as the processor sees it; ``token`` is opaque to it (the consumer's message, which the
    worker acknowledges after the unit)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    topic_type: str
    token: Hashable = None


@dataclass(frozen=True, slots=True)
class Decoded:
    """A valid event and the message it came in."""

    event: Event
    message: InboundMessage


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message that could not be folded, with the stage and reason; the original bytes travel unchanged."""

    message: InboundMessage
    stage: str
    reason: Reason
    detail: str


@dataclass(slots=True)
class BatchOutput:
    """What one batch produced: profiles to publish (key, value) and dead letters."""

    profiles: list[tuple[bytes, bytes]] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    watermarks_ms: dict[int, int] = field(default_factory=dict)
    """Newest accepted event time per source partition: the event-time clock of the expiry scan."""
    event_times_ms: list[int] = field(default_factory=list)
    """Event times of the new events folded into ``profiles``: the caller observes their end-to-end latency once
    the profiles are delivered (the publication time the metric promises, not the fold's end)."""


class StateAccess(Protocol):
    """Per-user state reads and writes; ``message`` is one of the user's messages in this batch."""

    def load(self, user_id: str, message: InboundMessage) -> bytes | None:
        """The user's stored record, or None."""

    def store(self, user_id: str, message: InboundMessage, value: bytes) -> None:
        """Store the user's new record."""


def wall_clock_ms() -> int:
    """Wall-clock milliseconds; only used for ``updated_at`` and the latency metric, never for windows."""
    return time.time_ns() // 1_000_000


class StateUnavailableError(RuntimeError):
    """The state store could not be read: the worker pauses and retries the batch; no event is dead-lettered."""


class FoldMode(Enum):
    """How a user's hidden vector is brought up to date in this batch."""

    APPEND = "append"
    """Every new event is newer than all folded ones: one GRU step per new event from the stored vector."""
    REPAIR = "repair"
    """An event arrived out of order (the input topics are consumed independently): re-fold the recent window
    from the base vector, so the result equals folding every event in event-time order."""
    REBUILD = "rebuild"
    """The record was made by another model (or has no base vector): encode the stored window afresh."""


@dataclass(slots=True)
class _UserWork:
    user_id: str
    record: UserState
    last_message: InboundMessage
    messages: list[tuple[Event, InboundMessage]]
    mode: FoldMode = FoldMode.APPEND
    prev_ts_ms: int | None = None
    new_events: list[StateEvent] = field(default_factory=list)
    evicted: list[StateEvent] = field(default_factory=list)
    newest_ts_ms: list[int] = field(default_factory=list)
    accepted: list[InboundMessage] = field(default_factory=list)
    """The messages whose events were folded into the record in memory (new_events' messages)."""
    redelivered: int = 0
    """Messages at or below the positions the record had already processed (Kafka delivered them again)."""


@dataclass(slots=True)
class _Vectors:
    """What an encoder call sets on a record, kept to undo a call that failed part of the way."""

    hidden: np.ndarray
    base_hidden: np.ndarray
    base_prev_ts_ms: int
    base_known: bool
    model_version: str
    version: int

    @classmethod
    def of(cls, record: UserState) -> _Vectors:
        """The record's values now."""
        return cls(
            record.hidden,
            record.base_hidden,
            record.base_prev_ts_ms,
            record.base_known,
            record.model_version,
            record.version,
        )

    def restore(self, record: UserState) -> None:
        """Put the kept values back."""
        record.hidden, record.base_hidden = self.hidden, self.base_hidden
        record.base_prev_ts_ms, record.base_known = self.base_prev_ts_ms, self.base_known
        record.model_version, record.version = self.model_version, self.version


@dataclass(slots=True)
class _EncoderRows:
    """The rows of one batched encoder call: (start vector or None, events, previous event time) each."""

    hidden: list[np.ndarray | None] = field(default_factory=list)
    sequences: list[Sequence[EventFields]] = field(default_factory=list)
    prev_ts_ms: list[int | None] = field(default_factory=list)

    def add(self, hidden: np.ndarray | None, events: Sequence[StateEvent], prev_ts_ms: int | None) -> int:
        self.hidden.append(hidden if hidden is not None and hidden.size else None)
        # Stored events go to the encoder as they are (they carry every field it reads; see EventFields).
        self.sequences.append(events)
        self.prev_ts_ms.append(prev_ts_ms or None)
        return len(self.sequences) - 1


@dataclass(slots=True)
class _UnitCounts:
    """What a unit of work wrote, published and rejected, counted in the metrics only once the unit is whole.

    When a store read fails in a later slice, the caller discards the attempt (staged records, profiles, dead
    letters) and folds the whole unit again: counted as each slice ran, the earlier slices would count twice.
    The work itself (GRU steps, store reads) is counted as it runs, since it did run twice.
    """

    state_writes: int = 0
    republished: int = 0
    duplicates: int = 0
    model_rebuilds: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    newest_event_ms: int = 0
    """The newest event time folded into a profile of the unit (0: none)."""

    def add_to(self, metrics: WorkerMetrics) -> None:
        """Count everything in ``metrics``."""
        metrics.count_state_writes(self.state_writes)
        metrics.count_republished(self.republished)
        metrics.count_duplicates(self.duplicates)
        metrics.count_model_rebuilds(self.model_rebuilds)
        for reason, n in self.rejected.items():
            metrics.count_rejected(reason, n)
        if self.newest_event_ms:
            metrics.set_last_event_timestamp_ms(self.newest_event_ms)


def _step_kinds(work: Sequence[_UserWork]) -> dict[StepKind, int]:
    """How many GRU steps the batch's encoder call runs, by why they run."""
    steps: dict[StepKind, int] = {"new": 0, "refold": 0, "base": 0, "rebuild": 0}
    for w in work:
        if w.mode is FoldMode.REBUILD:
            steps["rebuild"] += len(w.record.recent)
            continue
        steps["new"] += len(w.new_events)
        steps["base"] += len(w.evicted)
        if w.mode is FoldMode.REPAIR:
            # The whole window (and what left it) is folded again; only the new events would have been steps anyway.
            steps["refold"] += len(w.evicted) + len(w.record.recent) - len(w.new_events)
    return steps


class BatchProcessor:
    """Folds micro-batches of input messages into user state and profiles."""

    def __init__(
        self,
        encoder: EncoderRuntime,
        spec: StateSpec,
        metrics: WorkerMetrics,
        clock_ms: Callable[[], int] = wall_clock_ms,
        cache: RecordCache | None = None,
        *,
        partition_for_key: Callable[[bytes], int] | None = None,
        slice_events: int = SLICE_EVENTS,
    ) -> None:
        self.encoder = encoder
        self.slice_events = slice_events
        self.spec = spec
        self.metrics = metrics
        self.clock_ms = clock_ms
        self.cache = cache if cache is not None else RecordCache(0)
        # The documented partitioner of the input topics; a message elsewhere would split its user's state.
        self.partition_for_key = partition_for_key
        self._unit = _UnitCounts()

    def forget(self, user_ids: Iterable[str] | None = None) -> None:
        """Drop cached records: of ``user_ids``, or of every user (after a rebalance); the store has them all."""
        if user_ids is None:
            self.cache.clear()
            return
        for user_id in user_ids:
            self.cache.discard(user_id)

    def process(self, messages: Sequence[InboundMessage], state: StateAccess) -> BatchOutput:
        """Decode and fold one micro-batch; never raises for bad input (it becomes dead letters)."""
        output = BatchOutput()
        decoded = self.decode(messages, output)
        self.fold(decoded, state, output, consumed=len(messages))
        return output

    def decode(self, messages: Sequence[InboundMessage], output: BatchOutput) -> list[Decoded]:
        """The valid events of ``messages``, in their order; the others become dead letters in ``output``."""
        now_ms = self.clock_ms()
        # Every record read counts as consumed, valid or not: the dead-letter ratio divides by this.
        for topic_type, count in Counter(m.topic_type for m in messages).items():
            self.metrics.count_consumed(topic_type, count)
        decoded: list[Decoded] = []
        expected_partition: dict[bytes, int] = {}
        for message in messages:
            result = decode_event(
                message.value, message.key, topic_type=message.topic_type, require_key=True, now_ms=now_ms
            )
            if isinstance(result, Rejection):
                self._reject(message, "decode", result.reason, result.detail, output)
                continue
            if self.partition_for_key is not None and message.key is not None:
                partition = expected_partition.get(message.key)
                if partition is None:
                    partition = expected_partition[message.key] = self.partition_for_key(message.key)
                if partition != message.partition:
                    detail = "the key belongs to another partition: producers must use Kafka's default partitioner"
                    self._reject(message, "decode", Reason.WRONG_PARTITION, detail, output)
                    continue
            decoded.append(Decoded(result, message))
        return decoded

    def _reject(self, message: InboundMessage, stage: str, reason: Reason, detail: str, output: BatchOutput) -> None:
        output.dead_letters.append(DeadLetter(message, stage, reason, detail))
        self.metrics.count_rejected(reason.value)

    def fold(
        self, decoded: Sequence[Decoded], state: StateAccess, output: BatchOutput, consumed: int | None = None
    ) -> None:
        """Fold decoded events into their users' state, encode, and add profiles and dead letters to ``output``.

        A failure while folding one user's events dead-letters only that user's events; nothing here raises.
        """
        for _ in self.fold_in_slices(decoded, state, output, consumed):
            pass

    def fold_in_slices(
        self, decoded: Sequence[Decoded], state: StateAccess, output: BatchOutput, consumed: int | None = None
    ) -> Iterator[None]:
        """:meth:`fold`, one slice of users at a time: yields after each slice of about ``slice_events`` events.

        A unit of work runs on the worker's event loop; the caller lets the loop run between slices, so a large
        unit (many events per user: fewer, fuller profiles) does not hold lookups and timers for its whole
        length. A user's events are never split across slices, and users do not depend on each other, so the
        result is the same as folding the unit in one go.
        """
        own_s = 0.0  # the unit's own time, without what the event loop ran between slices
        started = time.perf_counter()
        hits, misses = self.cache.hits, self.cache.misses
        self._unit = _UnitCounts()
        by_user: dict[str, list[tuple[Event, InboundMessage]]] = {}
        for item in decoded:
            by_user.setdefault(item.event.user_id, []).append((item.event, item.message))
        users = list(by_user.items())
        first = 0
        while first < len(users):
            last, events = first, 0
            while last < len(users) and (events < self.slice_events or last == first):
                events += len(users[last][1])
                last += 1
            self._fold_slice(users[first:last], state, output)
            first = last
            if first < len(users):
                own_s += time.perf_counter() - started
                yield
                started = time.perf_counter()
        own_s += time.perf_counter() - started
        self._unit.add_to(self.metrics)
        # Every cache miss was a store read (see _load_record); counted once per unit, not per user.
        self.metrics.count_state_cache_hits(self.cache.hits - hits)
        self.metrics.count_state_reads(self.cache.misses - misses)
        self.metrics.observe_batch(len(decoded) if consumed is None else consumed, own_s)

    def _fold_slice(
        self, users: Sequence[tuple[str, list[tuple[Event, InboundMessage]]]], state: StateAccess, output: BatchOutput
    ) -> None:
        """Fold and encode the events of ``users`` (each with all of its events of the unit): their records are
        staged in ``state``, their profiles and dead letters added to ``output``."""
        work: list[_UserWork] = []
        refresh: list[_UserWork] = []
        for user_id, events in users:
            try:
                user_work = self._fold_user(user_id, events, state, output)
            except StateUnavailableError:
                raise
            except Exception:
                # A bug must not stop the partition or lose the events: they go to the dead-letter topic.
                log.exception("folding a user's events failed; their events go to the dead-letter topic")
                self.cache.discard(user_id)
                self._dead_letter_all(events, "fold", output)
                continue
            if user_work.new_events or user_work.mode is FoldMode.REBUILD:
                work.append(user_work)
            elif user_work.redelivered:
                refresh.append(user_work)
            else:
                # Nothing to store (duplicates, too-late events); the record may have changed in memory.
                self.cache.discard(user_id)
        if work:
            self._encode_isolated(work, state, output)
        if refresh:
            self._republish(refresh, state, output)

    def _encode_isolated(self, work: list[_UserWork], state: StateAccess, output: BatchOutput) -> None:
        """One encoder call for the slice; if it fails, one call per user, so that a user whose record the
        encoder cannot take (a bug, a record no check foresaw) costs only that user's events, which go to the
        dead-letter topic, and not every other user's of the slice."""
        before = [_Vectors.of(w.record) for w in work]
        try:
            self._encode_and_publish(work, state, output)
            return
        except StateUnavailableError:
            raise
        except Exception:
            if len(work) == 1:
                self._encode_failed(work[0], output)
                return
            log.warning("encoding a slice of %d users failed; encoding them one by one", len(work))
        for w, vectors in zip(work, before, strict=True):
            vectors.restore(w.record)  # the failed call may have set some records' vectors and versions
            try:
                self._encode_and_publish([w], state, output)
            except StateUnavailableError:
                raise
            except Exception:
                self._encode_failed(w, output)

    def _encode_failed(self, w: _UserWork, output: BatchOutput) -> None:
        log.exception("encoding a user's events failed; their events go to the dead-letter topic")
        self.cache.discard(w.user_id)
        # Only the events folded in memory: too-late ones have their dead letter already, redeliveries were
        # folded before.
        for message in w.accepted:
            output.dead_letters.append(
                DeadLetter(message, "encode", Reason.PROCESSING_ERROR, "internal error, see logs")
            )
        self._unit.rejected[Reason.PROCESSING_ERROR.value] += len(w.accepted)

    def _dead_letter_all(self, events: list[tuple[Event, InboundMessage]], stage: str, output: BatchOutput) -> None:
        for _, message in events:
            output.dead_letters.append(DeadLetter(message, stage, Reason.PROCESSING_ERROR, "internal error, see logs"))
        self._unit.rejected[Reason.PROCESSING_ERROR.value] += len(events)

    def _load_record(self, user_id: str, message: InboundMessage, state: StateAccess) -> UserState:
        cached = self.cache.get(user_id)
        if cached is not None:
            return cached
        try:
            raw = state.load(user_id, message)
        except Exception as exc:
            # The store failed (an I/O error): an infrastructure fault, never the events' fault.
            raise StateUnavailableError("the state store could not be read") from exc
        if raw is None:
            return UserState.new()
        try:
            return decode_state(raw, self.spec)
        except StateDecodeError as exc:
            # The record is unreadable: start the user afresh rather than stop the partition.
            self.metrics.count_state_decode_errors()
            log.error("unreadable state record replaced by a fresh one: %s", exc)
            return UserState.new()

    def _fold_user(
        self,
        user_id: str,
        events: list[tuple[Event, InboundMessage]],
        state: StateAccess,
        output: BatchOutput,
    ) -> _UserWork:
        """Load the user's record, fold the batch's events into it in event order, and choose the encoder mode."""
        last_message = events[-1][1]
        record = self._load_record(user_id, last_message, state)
        has_history = record.event_count > 0
        newest_folded = event_order_key(record.recent[-1]) if record.recent else None
        work = _UserWork(
            user_id=user_id,
            record=record,
            last_message=last_message,
            messages=events,
            prev_ts_ms=record.last_event_ms if has_history else None,
        )
        self._fold_events(work, output)
        work.mode = self._fold_mode(record, has_history, newest_folded, work.new_events)
        return work

    def _fold_events(self, work: _UserWork, output: BatchOutput) -> None:
        """Fold each new event of one user, dropping redeliveries and duplicates and dead-lettering late ones."""
        record = work.record
        converted = sorted(
            ((to_state_event(event, self.spec.max_query_terms), event, message) for event, message in work.messages),
            key=lambda triple: event_order_key(triple[0]),
        )
        duplicates = 0
        # Kafka redelivers after a crash from the last committed offset; anything at or below the highest
        # position already processed for this user is such a redelivery, however far back it reaches.
        processed = list(record.positions)
        for state_event, event, message in converted:
            code = state_event.type_code
            # A message without an input position (NO_POSITION: a backfilled history event, never on an input
            # topic) is deduplicated by its event id alone and leaves the positions as they are.
            if message.offset != NO_POSITION:
                record.positions[code] = max(record.positions[code], message.offset)
                if message.offset <= processed[code]:
                    work.redelivered += 1
                    duplicates += 1
                    continue
            outcome = fold_event(record, state_event, self.spec, work.evicted)
            if outcome is FoldOutcome.ACCEPTED:
                work.new_events.append(state_event)
                work.newest_ts_ms.append(event.ts_ms)
                work.accepted.append(message)
                if event.ts_ms > output.watermarks_ms.get(message.partition, 0):
                    output.watermarks_ms[message.partition] = event.ts_ms
            elif outcome is FoldOutcome.DUPLICATE:
                duplicates += 1
            else:
                detail = "event is older than the allowed lateness"
                output.dead_letters.append(DeadLetter(message, "fold", Reason.TOO_LATE, detail))
                self._unit.rejected[Reason.TOO_LATE.value] += 1
        self._unit.duplicates += duplicates

    def _republish(self, refresh: list[_UserWork], state: StateAccess, output: BatchOutput) -> None:
        """Publish again, under a new version, the stored profile of users whose events were all redeliveries.

        Kafka redelivers what was not committed, and a crash may have come after the state change was durable
        but before its profile was published (profiles go last): without this the profile topic would lag the
        state until the user's next event. A new version keeps versions strictly increasing for consumers who
        did get the first copy. No GRU step runs: the stored hidden vector goes through the model's head.
        """
        try:
            current = current_records([w.record for w in refresh], self.encoder)
        except Exception:
            # A bug here must not stop the partition; the profile goes out with the user's next event.
            log.exception("re-publishing the profiles of redelivered users failed")
            for w in refresh:
                self.cache.discard(w.user_id)
            return
        now_ms = self.clock_ms()
        for w, (record, embedding) in zip(refresh, current, strict=True):
            try:
                record.version += 1
                value = encode_state(record, self.spec)
                profile = build_profile(w.user_id, record, embedding, self.spec, now_ms).to_bytes()
            except Exception:
                # Only redeliveries, already folded: nothing is lost, the profile goes out with the next event.
                log.exception("re-publishing a redelivered user's profile failed")
                self.cache.discard(w.user_id)
                continue
            state.store(w.user_id, w.last_message, value)
            self.cache.put(w.user_id, record)
            output.profiles.append((w.user_id.encode(), profile))
            self._unit.state_writes += 1
            self._unit.republished += 1

    def _fold_mode(
        self,
        record: UserState,
        has_history: bool,
        newest_folded: tuple[int, int] | None,
        new_events: Sequence[StateEvent],
    ) -> FoldMode:
        """How the hidden vector is brought up to date: see :class:`FoldMode`."""
        if has_history and (
            record.model_version != self.encoder.model_version
            or not record.base_known
            or record.hidden.size not in (0, self.encoder.hidden_dim)
        ):
            return FoldMode.REBUILD
        if newest_folded is not None and any(event_order_key(e) < newest_folded for e in new_events):
            return FoldMode.REPAIR
        return FoldMode.APPEND

    def _encode_and_publish(self, work: list[_UserWork], state: StateAccess, output: BatchOutput) -> None:
        """One encoder call for every user of the batch, then their records and profiles."""
        rows, hidden_row, base_row = self._encoder_rows(work)
        self._unit.model_rebuilds += sum(w.mode is FoldMode.REBUILD for w in work)
        self.metrics.count_encoder_steps(_step_kinds(work))
        step_started = time.perf_counter()
        new_hidden, profiles = self.encoder.fold(rows.hidden, rows.sequences, rows.prev_ts_ms)
        self.metrics.observe_encoder_step(time.perf_counter() - step_started)
        self._store_and_publish(
            work, new_hidden, embedding_rows(profiles), (hidden_row, base_row), state=state, output=output
        )

    @staticmethod
    def _encoder_rows(work: list[_UserWork]) -> tuple[_EncoderRows, list[int], list[int | None]]:
        """The encoder's rows: per user, the row of its new hidden vector and, if events left the window, of its
        new base vector."""
        rows = _EncoderRows()
        hidden_row: list[int] = []
        base_row: list[int | None] = []
        for w in work:
            record = w.record
            base = None if record.base_hidden.size == 0 else record.base_hidden
            if w.mode is FoldMode.REBUILD:
                # The stored window already holds this batch's events; it becomes the model's whole history.
                hidden_row.append(rows.add(None, record.recent, None))
                base_row.append(None)
            elif w.mode is FoldMode.REPAIR:
                hidden_row.append(rows.add(base, [*w.evicted, *record.recent], record.base_prev_ts_ms))
                base_row.append(rows.add(base, w.evicted, record.base_prev_ts_ms) if w.evicted else None)
            else:
                hidden_row.append(rows.add(record.hidden, w.new_events, w.prev_ts_ms))
                base_row.append(rows.add(base, w.evicted, record.base_prev_ts_ms) if w.evicted else None)
        return rows, hidden_row, base_row

    def _store_and_publish(
        self,
        work: list[_UserWork],
        new_hidden: Sequence[np.ndarray],
        embeddings: list[list[float]],
        rows: tuple[list[int], list[int | None]],
        *,
        state: StateAccess,
        output: BatchOutput,
    ) -> None:
        """Set each record's vectors and version, encode it and its profile; store them only once all are made."""
        now_ms = self.clock_ms()
        newest: list[int] = []
        encoded: list[bytes] = []
        profiles_out: list[tuple[bytes, bytes]] = []
        hidden_row, base_row = rows
        for w, h_index, b_index in zip(work, hidden_row, base_row, strict=True):
            record = w.record
            record.hidden = new_hidden[h_index]
            if w.mode is FoldMode.REBUILD:
                record.base_hidden, record.base_prev_ts_ms, record.base_known = empty_hidden(), 0, True
            elif b_index is not None:
                record.base_hidden = new_hidden[b_index]
                record.base_prev_ts_ms = w.evicted[-1].ts_ms
            record.model_version = self.encoder.model_version
            record.version += 1
            encoded.append(encode_state(record, self.spec))
            profile = build_profile(w.user_id, record, embeddings[h_index], self.spec, now_ms)
            profiles_out.append((w.user_id.encode(), profile.to_bytes()))
            newest.extend(w.newest_ts_ms)
        # Only once every user of the batch is encoded: a failure above leaves nothing half-stored.
        for w, value in zip(work, encoded, strict=True):
            state.store(w.user_id, w.last_message, value)
            self.cache.put(w.user_id, w.record)
        output.profiles.extend(profiles_out)
        self._unit.state_writes += len(work)
        output.event_times_ms.extend(newest)
        if newest:
            self._unit.newest_event_ms = max(self._unit.newest_event_ms, *newest)
