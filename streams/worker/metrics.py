"""Prometheus metrics of one worker, all held by one object built from an injected registry.

Nothing is registered at import time and the global registry is never touched: the worker builds one
`WorkerMetrics(CollectorRegistry())` at start-up and tests build their own. Labels are bounded sets
(event types, reject reason codes, tombstone causes, topic/partition, model version); no label ever
carries a user id, a query or any other value taken from an event.

The exposed names and their meanings are listed in docs/metrics.md; the alert rules in
deploy/prometheus/rules/ depend on them, so a rename is a contract change.
"""

from __future__ import annotations

import math
import threading
import time
from bisect import bisect_left
from collections import Counter as CounterOf
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Final, Literal
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client import start_http_server as _start_http_server

from streams.contract.events import EVENT_TYPES

NAMESPACE: Final = "profilestream"


def observe_many(histogram: Histogram, amounts: Sequence[float]) -> None:
    """Observe each of ``amounts`` (finite numbers): the same bucket counts and sum as one ``observe`` each.

    ``Histogram.observe`` takes a lock and walks the bucket bounds for every value, about a microsecond: at one
    latency per event that was 1 % of a drain. Here each value's bucket is found by bisection and each bucket
    is incremented once. It reads prometheus_client's unlabelled-histogram internals (``_upper_bounds``,
    ``_buckets``, ``_sum``; tests/streams/test_metrics.py holds the result equal to one ``observe`` per value)
    and observes one by one where they are missing.
    """
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if bounds is None or buckets is None or total is None or len(bounds) != len(buckets):
        for amount in amounts:
            histogram.observe(amount)
        return
    if not amounts:
        return
    # observe() counts a value in the first bucket whose bound is >= it: bisect_left's index (the last bound is +Inf).
    for index, count in CounterOf(bisect_left(bounds, amount) for amount in amounts).items():
        buckets[index].inc(count)
    total.inc(math.fsum(amounts))


# Event types counted under their own label (the contract's); anything else is counted as `unknown`.

UNKNOWN_EVENT_TYPE: Final = "unknown"

TombstoneCause = Literal["expiry", "erasure"]
TOMBSTONE_CAUSES: Final[tuple[TombstoneCause, ...]] = ("expiry", "erasure")

OffsetJumpOutcome = Literal["refetched", "confirmed"]
OFFSET_JUMP_OUTCOMES: Final[tuple[OffsetJumpOutcome, ...]] = ("refetched", "confirmed")
ErasureOutcome = Literal["executed", "unknown_user", "rejected"]
ERASURE_OUTCOMES: Final[tuple[ErasureOutcome, ...]] = ("executed", "unknown_user", "rejected")
"""What became of an erasure request: the user's state deleted and a tombstone published; no state for the user
(nothing deleted, a tombstone published all the same); or not a valid request (dead-lettered, nothing deleted)."""

StepKind = Literal["new", "refold", "base", "rebuild"]
STEP_KINDS: Final[tuple[StepKind, ...]] = ("new", "refold", "base", "rebuild")
InfraStage = Literal["publish", "store"]
INFRA_STAGES: Final[tuple[InfraStage, ...]] = ("publish", "store")
"""Where an infrastructure fault made the worker retry: `publish`, a write to Kafka (state changelog, dead letters,
profiles and tombstones all go through one ``BulkProducer.publish``; the log line of a refused batch names its
topic), and `store`, a read or write of the local state store (RocksDB, i.e. the disk)."""

# Buckets, in base units. Each set is chosen so that the thresholds the alerts and the dashboard use
# are bucket boundaries, which makes `histogram_quantile` exact there and the SLO ratio exact.

END_TO_END_LATENCY_BUCKETS_S: Final = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
)  # fmt: skip
"""Event time -> profile publication, 5 ms .. 5 min. 1.0 s is the latency SLO threshold (99% within 1 s)."""

GC_SWEEP_BUCKETS_S: Final = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
STATE_PURGE_BUCKETS_S: Final = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
"""Flush and full compaction of one partition database after deletes, 10 ms .. 5 min."""
BATCH_SIZE_BUCKETS: Final = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 20000, 50000)
"""Events per micro-batch (at most `batch_max_events`, default 20000), 1 .. 50000. The setting has no upper limit:
units above 50000 count in +Inf only."""

BATCH_PROCESSING_BUCKETS_S: Final = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
"""Wall time to process one micro-batch (decode, fold, encode, publish), 1 ms .. 30 s."""

ENCODER_STEP_BUCKETS_S: Final = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)  # fmt: skip
"""Wall time of one batched GRU fold call across the users of a batch, 0.1 ms .. 2.5 s."""


@dataclass(frozen=True)
class MetricsServer:
    """A running `/metrics` HTTP server; call `shutdown()` to stop it and free the port."""

    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        """The bound port (useful when started on port 0)."""
        return int(self.server.server_port)

    def shutdown(self) -> None:
        """Stop serving, close the socket and wait for the serving thread to end."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5.0)


class WorkerMetrics:
    """Every metric a worker exposes, registered on `registry` when constructed.

    Call the helpers once per micro-batch with counts where possible rather than once per event.
    `reject_reasons` pre-creates the rejected counter for each of the decoder's reason codes so that
    `rate()` sees a zero before the first rejection; reasons must be code constants, never input text.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        reject_reasons: Iterable[str] = (),
        process_metrics: bool = True,
    ) -> None:
        self.registry = registry
        if process_metrics:
            # process_* (CPU, memory, fds, start time) and python_info, on our registry, not the global one.
            ProcessCollector(registry=registry)
            PlatformCollector(registry=registry)

        def counter(name: str, doc: str, labels: Sequence[str] = ()) -> Counter:
            # prometheus_client appends `_total` to counter samples itself.
            return Counter(name, doc, labels, namespace=NAMESPACE, registry=registry)

        def gauge(name: str, doc: str, labels: Sequence[str] = ()) -> Gauge:
            return Gauge(name, doc, labels, namespace=NAMESPACE, registry=registry)

        def histogram(name: str, doc: str, buckets: Sequence[float]) -> Histogram:
            return Histogram(name, doc, namespace=NAMESPACE, registry=registry, buckets=buckets)

        self.events_consumed = counter(
            "events_consumed",
            "Records read from the input topics, by event type (rejected ones included).",
            ["type"],
        )
        self.events_rejected = counter(
            "events_rejected", "Records rejected by the decoder/validator, by reason code.", ["reason"]
        )
        self.events_duplicate = counter("events_duplicate", "Events dropped because already folded (same event_id).")
        self.profiles_published = counter("profiles_published", "Profile-updated events published.")
        self.offset_jumps = counter(
            "input_offset_jumps",
            "Fetches of an input partition that skipped offsets: read again (refetched) or a hole the broker "
            "confirmed (confirmed).",
            ["outcome"],
        )
        self.profiles_republished = counter(
            "profiles_republished",
            "Profiles published again under a new version because all of a user's events in a batch were "
            "redelivered (a crash may have stored the state without its profile).",
        )
        self.tombstones_published = counter(
            "tombstones_published", "Profile tombstones published, by cause.", ["cause"]
        )
        self.erasure_requests = counter(
            "erasure_requests", "Erasure requests handled, by outcome (executed, unknown_user, rejected).", ["outcome"]
        )
        self.deadletter_published = counter("deadletter_published", "Records published to the dead-letter topic.")
        self.publish_failed = counter(
            "publish_failed_records",
            "Records (profiles, state changelog, tombstones) in record batches Kafka did not accept.",
        )
        self.end_to_end_latency = histogram(
            "end_to_end_latency_seconds",
            "Event time to publication of the profile that includes the event.",
            END_TO_END_LATENCY_BUCKETS_S,
        )
        self.batch_size = histogram("batch_size_events", "Events per micro-batch.", BATCH_SIZE_BUCKETS)
        self.batch_processing = histogram(
            "batch_processing_seconds",
            "Time spent on one micro-batch (its slices, not what the event loop ran between them).",
            BATCH_PROCESSING_BUCKETS_S,
        )
        self.gc_sweep = histogram(
            "gc_sweep_seconds",
            "Pause of each full garbage-collector sweep (the worker's only long collector pauses).",
            GC_SWEEP_BUCKETS_S,
        )
        self._register_purge_metrics(counter, gauge, histogram)
        self.encoder_step = histogram(
            "encoder_step_seconds", "Wall time of one batched encoder fold call.", ENCODER_STEP_BUCKETS_S
        )
        self.state_reads = counter("state_reads", "User state records read from the state store.")
        self.state_cache_hits = counter(
            "state_cache_hits", "User state records found decoded in the worker's record cache (no store read)."
        )
        self.state_writes = counter("state_writes", "User state records written to the state store.")
        self.state_decode_errors = counter("state_decode_errors", "Stored user states that failed to decode.")
        self.model_rebuilds = counter(
            "model_rebuilds", "Hidden vectors rebuilt from the stored window after a model version change."
        )
        self.encoder_steps = counter(
            "encoder_steps",
            "GRU steps run, by why: new (a new event), refold (an event arrived out of order and the window "
            "was folded again), base (the base vector advanced over evicted events), rebuild (a new model).",
            ["kind"],
        )
        self.consumer_lag = gauge(
            "consumer_lag_messages",
            "High watermark minus the next offset to process, per assigned input partition.",
            ["topic", "partition"],
        )
        self.consumed_offset = gauge(
            "consumed_offset",
            "Highest offset processed, per assigned input partition.",
            ["topic", "partition"],
        )
        self.rebalances = counter("rebalances", "Consumer group rebalances seen by this worker.")
        self.broker_up = gauge(
            "broker_up", "1 when the last end-offset request to Kafka succeeded, 0 when it failed or timed out."
        )
        self.broker_unreachable = counter(
            "broker_unreachable", "End-offset requests to Kafka (one per lag refresh) that failed or timed out."
        )
        self.infra_retries = counter(
            "infra_retries",
            "Retries after an infrastructure fault, by stage (publish: a Kafka write; store: the local state store).",
            ["stage"],
        )
        self.paused = gauge(
            "paused", "1 while the worker has paused consumption because of an infrastructure fault, else 0."
        )
        self.events_held = gauge(
            "events_held",
            "Received events waiting for event-time alignment across the input topics (not yet acknowledged).",
        )
        self.users_in_state = gauge("users_in_state", "Users held in this worker's state partitions.")
        self.users_old_model = gauge(
            "users_old_model",
            "Users in this worker's state partitions whose state another model version made (not yet rebuilt); "
            "NaN until the first scan of the stored users.",
        )
        # Unknown, not 0, until a scan has counted: a rollout must not look done before anyone looked.
        self.users_old_model.set(float("nan"))
        self.model = Info("model", "Encoder model loaded by this worker.", namespace=NAMESPACE, registry=registry)
        self.model_load_failures = counter(
            "model_load_failures", "Failed attempts to load the encoder checkpoint at start-up."
        )
        self.last_event_timestamp = gauge(
            "last_event_timestamp_seconds", "Event time of the newest event folded, Unix seconds."
        )
        self.last_publish_timestamp = gauge(
            "last_publish_timestamp_seconds", "Wall time of the last profile publication, Unix seconds."
        )

        self._precreate_series(reject_reasons)
        # No request has failed yet: a worker that is still restoring its tables (before its first lag
        # refresh) must not look cut off from Kafka. The lag monitor sets it from its first request on.
        self.broker_up.set(1)
        self._newest_event_ts_ms: int | None = None
        self._partitions: set[tuple[str, str]] = set()

    def _register_purge_metrics(
        self,
        counter: Callable[..., Counter],
        gauge: Callable[..., Gauge],
        histogram: Callable[..., Histogram],
    ) -> None:
        """The metrics of the state purge (streams.worker.state_purge)."""
        self.state_purges = counter(
            "state_purges",
            "Partition databases flushed and compacted to take deleted users out of the state files.",
        )
        self.state_purged_deletes = counter(
            "state_purged_deletes", "Deleted records (erasure, expiry) taken out of the state files by purges."
        )
        self.state_purge_failures = counter(
            "state_purge_failures", "Purges of a partition database that failed (retried at the next interval)."
        )
        self.state_purge_failing = gauge(
            "state_purge_failing_partitions",
            "Partition databases whose last purge failed: deleted users may outlive the erasure bound on disk.",
        )
        self.state_purge = histogram(
            "state_purge_seconds", "Wall time of one purge of a partition database.", STATE_PURGE_BUCKETS_S
        )

    # -- input ---------------------------------------------------------------------------------------

    def _precreate_series(self, reject_reasons: Iterable[str]) -> None:
        # Every labelled series a dashboard or alert divides by exists from start-up at 0.
        for event_type in (*EVENT_TYPES, UNKNOWN_EVENT_TYPE):
            self.events_consumed.labels(type=event_type)
        for reason in reject_reasons:
            self.events_rejected.labels(reason=reason)
        for cause in TOMBSTONE_CAUSES:
            self.tombstones_published.labels(cause=cause)
        for outcome in OFFSET_JUMP_OUTCOMES:
            self.offset_jumps.labels(outcome=outcome)
        for erasure_outcome in ERASURE_OUTCOMES:
            self.erasure_requests.labels(outcome=erasure_outcome)
        for stage in INFRA_STAGES:
            self.infra_retries.labels(stage=stage)
        for kind in STEP_KINDS:
            self.encoder_steps.labels(kind=kind)

    def count_consumed(self, event_type: str, n: int = 1) -> None:
        """Count `n` records read from the input topic of `event_type`, before decoding.

        Every record read is counted, valid or not: the dead-letter ratio and the accepted-events rule
        divide and subtract by this count. Types outside browse|search|purchase count as unknown.
        """
        label = event_type if event_type in EVENT_TYPES else UNKNOWN_EVENT_TYPE
        self.events_consumed.labels(type=label).inc(n)

    def count_rejected(self, reason: str, n: int = 1) -> None:
        """Count `n` records rejected with the decoder's reason code (a constant, never input text)."""
        self.events_rejected.labels(reason=reason).inc(n)

    def count_duplicates(self, n: int = 1) -> None:
        """Count `n` events dropped because their event_id was already folded."""
        self.events_duplicate.inc(n)

    def set_last_event_timestamp_ms(self, ts_ms: int) -> None:
        """Record the event time of a folded event; the gauge only moves forward."""
        if self._newest_event_ts_ms is None or ts_ms > self._newest_event_ts_ms:
            self._newest_event_ts_ms = ts_ms
            self.last_event_timestamp.set(ts_ms / 1000.0)

    # -- output --------------------------------------------------------------------------------------

    def count_published(self, n: int = 1, *, now_s: float | None = None) -> None:
        """Count `n` profiles published and stamp the last-publication time (wall clock unless `now_s`)."""
        self.profiles_published.inc(n)
        self.last_publish_timestamp.set(time.time() if now_s is None else now_s)

    def count_offset_jump(self, outcome: OffsetJumpOutcome) -> None:
        """Count a fetch that skipped input offsets, by what the worker did about it."""
        self.offset_jumps.labels(outcome=outcome).inc()

    def count_republished(self, n: int = 1) -> None:
        """Count `n` profiles published again after redeliveries (they are in `count_published` too)."""
        self.profiles_republished.inc(n)

    def count_tombstones(self, cause: TombstoneCause, n: int = 1) -> None:
        """Count `n` tombstones published because of `cause` (expiry or erasure)."""
        if cause not in TOMBSTONE_CAUSES:
            raise ValueError(f"unknown tombstone cause {cause!r}; expected one of {TOMBSTONE_CAUSES}")
        self.tombstones_published.labels(cause=cause).inc(n)

    def count_erasure_request(self, outcome: ErasureOutcome) -> None:
        """Count one erasure request and what became of it."""
        if outcome not in ERASURE_OUTCOMES:
            raise ValueError(f"unknown erasure outcome {outcome!r}; expected one of {ERASURE_OUTCOMES}")
        self.erasure_requests.labels(outcome=outcome).inc()

    def count_deadletter(self, n: int = 1) -> None:
        """Count `n` records published to the dead-letter topic."""
        self.deadletter_published.inc(n)

    def count_publish_failures(self, records: int) -> None:
        """Count `records` in a record batch that Kafka did not accept."""
        self.publish_failed.inc(records)

    def observe_gc_sweep(self, seconds: float) -> None:
        """Observe one full garbage-collector sweep that paused the worker for `seconds`."""
        self.gc_sweep.observe(seconds)

    def observe_state_purge(self, deletes: int, seconds: float) -> None:
        """Observe one purge of a partition database that removed `deletes` deleted records in `seconds`."""
        self.state_purges.inc()
        self.state_purged_deletes.inc(deletes)
        self.state_purge.observe(seconds)

    def count_state_purge_failure(self) -> None:
        """Count one purge of a partition database that failed."""
        self.state_purge_failures.inc()

    def set_state_purge_failing(self, partitions: int) -> None:
        """Set how many partition databases' last purge failed (0 once each has been purged since)."""
        self.state_purge_failing.set(partitions)

    def observe_end_to_end_latency_ms(self, event_ts_ms: Iterable[int], published_at_ms: int) -> None:
        """Observe, for each event folded into a publication at `published_at_ms`, its latency.

        A negative latency (producer clock ahead of ours) is observed as zero rather than dropped, so the
        SLO's event count stays equal to the number of events published.
        """
        observe_many(self.end_to_end_latency, [max(0, published_at_ms - ts_ms) / 1000.0 for ts_ms in event_ts_ms])

    # -- processing ----------------------------------------------------------------------------------

    def observe_batch(self, size: int, seconds: float) -> None:
        """Observe one micro-batch of `size` events processed in `seconds`."""
        self.batch_size.observe(size)
        self.batch_processing.observe(seconds)

    def observe_encoder_step(self, seconds: float) -> None:
        """Observe one batched encoder fold call that took `seconds`."""
        self.encoder_step.observe(seconds)

    def count_state_reads(self, n: int = 1) -> None:
        """Count `n` user states read from the store."""
        self.state_reads.inc(n)

    def count_state_cache_hits(self, n: int = 1) -> None:
        """Count `n` user states taken from the record cache instead of the store."""
        self.state_cache_hits.inc(n)

    def count_state_writes(self, n: int = 1) -> None:
        """Count `n` user states written to the store."""
        self.state_writes.inc(n)

    def count_state_decode_errors(self, n: int = 1) -> None:
        """Count `n` stored states that failed to decode."""
        self.state_decode_errors.inc(n)

    def count_encoder_steps(self, steps: Mapping[StepKind, int]) -> None:
        """Count GRU steps by why they ran (see ``STEP_KINDS``)."""
        for kind, n in steps.items():
            if n:
                self.encoder_steps.labels(kind=kind).inc(n)

    def count_model_rebuilds(self, n: int = 1) -> None:
        """Count `n` hidden vectors rebuilt after a model version change."""
        self.model_rebuilds.inc(n)

    def set_users_in_state(self, n: int) -> None:
        """Set the number of users held in this worker's state partitions."""
        self.users_in_state.set(n)

    def set_users_old_model(self, n: int) -> None:
        """Set the number of users whose state another model version made (a rollout's remaining work)."""
        self.users_old_model.set(n)

    # -- consumer group ------------------------------------------------------------------------------

    def set_lag(self, topic: str, partition: int, lag: int) -> None:
        """Set the lag (messages not yet processed) of an assigned input partition."""
        self._partitions.add((topic, str(partition)))
        self.consumer_lag.labels(topic=topic, partition=str(partition)).set(max(0, lag))

    def set_consumed_offset(self, topic: str, partition: int, offset: int) -> None:
        """Set the highest offset processed on an assigned input partition."""
        self._partitions.add((topic, str(partition)))
        self.consumed_offset.labels(topic=topic, partition=str(partition)).set(offset)

    def retain_partitions(self, assigned: Iterable[tuple[str, int]]) -> None:
        """Drop the lag and offset series of partitions no longer assigned to this worker.

        Call after every rebalance: a revoked partition's last lag would otherwise stay exposed here
        while its new owner reports it too, and the lag/stalled alerts would count it twice.
        """
        keep = {(topic, str(partition)) for topic, partition in assigned}
        for topic, partition in self._partitions - keep:
            for gauge in (self.consumer_lag, self.consumed_offset):
                # Only one of the two gauges may have been set; older clients raise KeyError then.
                with suppress(KeyError):
                    gauge.remove(topic, partition)
        self._partitions &= keep

    def count_rebalance(self) -> None:
        """Count one rebalance (partitions assigned or revoked)."""
        self.rebalances.inc()

    # -- infrastructure ------------------------------------------------------------------------------

    def set_broker_up(self, up: bool) -> None:
        """Record whether the last end-offset request reached Kafka (see streams.worker.lag_monitor)."""
        self.broker_up.set(1 if up else 0)

    def count_broker_unreachable(self, n: int = 1) -> None:
        """Count `n` end-offset requests that failed or timed out."""
        self.broker_unreachable.inc(n)

    def count_infra_retry(self, stage: InfraStage, n: int = 1) -> None:
        """Count `n` retries of `stage` after an infrastructure fault (never a bad message: that is a dead letter)."""
        if stage not in INFRA_STAGES:
            raise ValueError(f"unknown infrastructure stage {stage!r}; expected one of {INFRA_STAGES}")
        self.infra_retries.labels(stage=stage).inc(n)

    def set_paused(self, paused: bool) -> None:
        """Record whether consumption is paused because of an infrastructure fault."""
        self.paused.set(1 if paused else 0)

    def set_events_held(self, count: int) -> None:
        """Record how many received events wait for event-time alignment."""
        self.events_held.set(count)

    # -- model ---------------------------------------------------------------------------------------

    def set_model_version(self, model_version: str) -> None:
        """Expose the loaded model version as `profilestream_model_info{model_version=...} 1`."""
        self.model.info({"model_version": model_version})

    def count_model_load_failure(self) -> None:
        """Count one failed checkpoint load (the model-load alert fires on any non-zero value)."""
        self.model_load_failures.inc()

    # -- exposition ----------------------------------------------------------------------------------

    def start_http_server(self, bind: str, port: int) -> MetricsServer:
        """Serve this registry at `http://bind:port/metrics` from a daemon thread; port 0 picks one."""
        server, thread = _start_http_server(port, addr=bind, registry=self.registry)
        return MetricsServer(server=server, thread=thread)
