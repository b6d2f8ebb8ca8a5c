"""WorkerMetrics: exposed names, label hygiene and helper behaviour, each test on a fresh registry."""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, Histogram
from prometheus_client.parser import text_string_to_metric_families

from streams.settings import Settings
from streams.worker.metrics import (
    BATCH_SIZE_BUCKETS,
    END_TO_END_LATENCY_BUCKETS_S,
    INFRA_STAGES,
    WorkerMetrics,
    observe_many,
)

REPO_ROOT = Path(__file__).resolve().parents[2]

EXPECTED_SAMPLE_NAMES = {
    "profilestream_events_consumed_total",
    "profilestream_events_rejected_total",
    "profilestream_events_duplicate_total",
    "profilestream_profiles_published_total",
    "profilestream_tombstones_published_total",
    "profilestream_deadletter_published_total",
    "profilestream_end_to_end_latency_seconds_bucket",
    "profilestream_end_to_end_latency_seconds_count",
    "profilestream_end_to_end_latency_seconds_sum",
    "profilestream_batch_size_events_bucket",
    "profilestream_batch_processing_seconds_bucket",
    "profilestream_encoder_step_seconds_bucket",
    "profilestream_state_reads_total",
    "profilestream_state_writes_total",
    "profilestream_state_decode_errors_total",
    "profilestream_state_purges_total",
    "profilestream_state_purged_deletes_total",
    "profilestream_state_purge_failures_total",
    "profilestream_state_purge_failing_partitions",
    "profilestream_state_purge_seconds_bucket",
    "profilestream_model_rebuilds_total",
    "profilestream_consumer_lag_messages",
    "profilestream_consumed_offset",
    "profilestream_rebalances_total",
    "profilestream_broker_up",
    "profilestream_broker_unreachable_total",
    "profilestream_infra_retries_total",
    "profilestream_paused",
    "profilestream_users_in_state",
    "profilestream_model_info",
    "profilestream_model_load_failures_total",
    "profilestream_last_event_timestamp_seconds",
    "profilestream_last_publish_timestamp_seconds",
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "python_info",
}


def sample_names(registry: CollectorRegistry) -> set[str]:
    return {sample.name for family in registry.collect() for sample in family.samples}


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> WorkerMetrics:
    return WorkerMetrics(registry, reject_reasons=("invalid_json", "missing_field"))


def test_exposes_every_contract_name_once_populated(registry: CollectorRegistry, metrics: WorkerMetrics) -> None:
    # Label-only series (lag, offsets, model info) appear once set; set them so every name is present.
    metrics.set_lag("events.browse", 0, 5)
    metrics.set_consumed_offset("events.browse", 0, 41)
    metrics.set_model_version("gru-v1")
    assert EXPECTED_SAMPLE_NAMES - sample_names(registry) == set()


def test_two_instances_on_fresh_registries_do_not_collide() -> None:
    WorkerMetrics(CollectorRegistry())
    WorkerMetrics(CollectorRegistry())


def test_nothing_lands_on_the_global_registry(metrics: WorkerMetrics) -> None:
    assert not any(name.startswith("profilestream_") for name in sample_names(REGISTRY))


def test_constructing_twice_on_one_registry_is_refused(registry: CollectorRegistry) -> None:
    WorkerMetrics(registry)
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        WorkerMetrics(registry)


def test_process_metrics_can_be_left_out(registry: CollectorRegistry) -> None:
    WorkerMetrics(registry, process_metrics=False)
    assert "process_cpu_seconds_total" not in sample_names(registry)


def test_consumed_series_start_at_zero_and_unknown_types_fold_into_unknown(
    registry: CollectorRegistry, metrics: WorkerMetrics
) -> None:
    for event_type in ("browse", "search", "purchase", "unknown"):
        assert value(registry, "profilestream_events_consumed_total", type=event_type) == 0.0
    metrics.count_consumed("browse", 3)
    metrics.count_consumed("some-user-supplied-type")
    assert value(registry, "profilestream_events_consumed_total", type="browse") == 3.0
    assert value(registry, "profilestream_events_consumed_total", type="unknown") == 1.0
    types = {
        s.labels["type"]
        for f in registry.collect()
        for s in f.samples
        if s.name == "profilestream_events_consumed_total"
    }
    assert types == {"browse", "search", "purchase", "unknown"}


def test_reject_reasons_are_precreated_and_counted(registry: CollectorRegistry, metrics: WorkerMetrics) -> None:
    assert value(registry, "profilestream_events_rejected_total", reason="missing_field") == 0.0
    metrics.count_rejected("invalid_json", 2)
    assert value(registry, "profilestream_events_rejected_total", reason="invalid_json") == 2.0


def test_tombstone_cause_is_checked(registry: CollectorRegistry, metrics: WorkerMetrics) -> None:
    metrics.count_tombstones("erasure")
    assert value(registry, "profilestream_tombstones_published_total", cause="erasure") == 1.0
    assert value(registry, "profilestream_tombstones_published_total", cause="expiry") == 0.0
    with pytest.raises(ValueError, match="unknown tombstone cause"):
        metrics.count_tombstones("bored")  # type: ignore[arg-type]


def test_simple_counters(registry: CollectorRegistry, metrics: WorkerMetrics) -> None:
    metrics.count_duplicates(4)
    metrics.count_deadletter(2)
    metrics.count_state_reads(7)
    metrics.count_state_writes(6)
    metrics.count_state_decode_errors()
    metrics.count_model_rebuilds(3)
    metrics.count_rebalance()
    metrics.count_model_load_failure()
    expected = {
        "profilestream_events_duplicate_total": 4.0,
        "profilestream_deadletter_published_total": 2.0,
        "profilestream_state_reads_total": 7.0,
        "profilestream_state_writes_total": 6.0,
        "profilestream_state_decode_errors_total": 1.0,
        "profilestream_model_rebuilds_total": 3.0,
        "profilestream_rebalances_total": 1.0,
        "profilestream_model_load_failures_total": 1.0,
    }
    assert {name: value(registry, name) for name in expected} == expected


def test_publication_counts_and_stamps_time(registry: CollectorRegistry, metrics: WorkerMetrics) -> None:
    metrics.count_published(5, now_s=1_700_000_000.5)
    assert value(registry, "profilestream_profiles_published_total") == 5.0
    assert value(registry, "profilestream_last_publish_timestamp_seconds") == 1_700_000_000.5


def test_last_event_timestamp_only_moves_forward(registry: CollectorRegistry, metrics: WorkerMetrics) -> None:
    metrics.set_last_event_timestamp_ms(1_700_000_002_000)
    metrics.set_last_event_timestamp_ms(1_700_000_001_000)  # a late event must not move it back
    assert value(registry, "profilestream_last_event_timestamp_seconds") == 1_700_000_002.0


def test_end_to_end_latency_is_in_seconds_and_clamps_clock_skew(
    registry: CollectorRegistry, metrics: WorkerMetrics
) -> None:
    metrics.observe_end_to_end_latency_ms([10_000, 10_900, 12_000], published_at_ms=11_000)
    name = "profilestream_end_to_end_latency_seconds"
    assert value(registry, f"{name}_count") == 3.0
    assert value(registry, f"{name}_sum") == pytest.approx(1.0 + 0.1 + 0.0)
    assert value(registry, f"{name}_bucket", le="0.005") == 1.0  # the skewed event, observed as 0
    assert value(registry, f"{name}_bucket", le="1.0") == 3.0


def test_observe_many_equals_one_observe_per_value() -> None:
    # observe_many reads prometheus_client's private bucket list: this is the canary for an upgrade that moves it.
    bounds = END_TO_END_LATENCY_BUCKETS_S
    values = [0.0, *bounds[:-1], *(b + 1e-9 for b in bounds[:-1]), 301.0, 0.0042, 1.0, 1.0, 12.5]
    one_by_one, in_bulk = CollectorRegistry(), CollectorRegistry()
    single = Histogram("h", "one observe per value", buckets=bounds, registry=one_by_one)
    bulk = Histogram("h", "observe_many", buckets=bounds, registry=in_bulk)
    assert hasattr(bulk, "_buckets") and hasattr(bulk, "_sum") and hasattr(bulk, "_upper_bounds")
    for amount in values:
        single.observe(amount)
    observe_many(bulk, values)
    for bound in [*(str(b) for b in bounds[:-1]), "+Inf"]:
        expected = value(one_by_one, "h_bucket", le=bound)
        assert expected is not None and value(in_bulk, "h_bucket", le=bound) == expected, bound
    assert value(in_bulk, "h_count") == len(values)
    assert value(in_bulk, "h_sum") == pytest.approx(value(one_by_one, "h_sum"))
    observe_many(bulk, [])
    assert value(in_bulk, "h_count") == len(values)


def test_latency_buckets_span_5ms_to_5min_and_hold_the_slo_threshold() -> None:
    assert END_TO_END_LATENCY_BUCKETS_S[0] == 0.005
    assert END_TO_END_LATENCY_BUCKETS_S[-1] == 300.0
    assert 1.0 in END_TO_END_LATENCY_BUCKETS_S


def test_batch_and_encoder_histograms(registry: CollectorRegistry, metrics: WorkerMetrics) -> None:
    metrics.observe_batch(size=120, seconds=0.03)
    metrics.observe_encoder_step(0.002)
    assert value(registry, "profilestream_batch_size_events_bucket", le="100.0") == 0.0
    assert value(registry, "profilestream_batch_size_events_bucket", le="250.0") == 1.0
    assert value(registry, "profilestream_batch_size_events_bucket", le="10000.0") == 1.0
    assert value(registry, "profilestream_batch_processing_seconds_sum") == pytest.approx(0.03)
    assert value(registry, "profilestream_encoder_step_seconds_count") == 1.0


def test_batch_size_buckets_measure_the_default_batch_and_larger_ones(
    registry: CollectorRegistry, metrics: WorkerMetrics
) -> None:
    default = Settings.model_fields["batch_max_events"].default
    assert default in BATCH_SIZE_BUCKETS
    assert BATCH_SIZE_BUCKETS[-1] > default
    metrics.observe_batch(size=default, seconds=1.0)
    metrics.observe_batch(size=30_000, seconds=1.0)
    assert value(registry, "profilestream_batch_size_events_bucket", le="10000.0") == 0.0
    assert value(registry, "profilestream_batch_size_events_bucket", le="20000.0") == 1.0
    assert value(registry, "profilestream_batch_size_events_bucket", le="50000.0") == 2.0
    docs = (REPO_ROOT / "docs" / "metrics.md").read_text(encoding="utf-8")
    row = re.search(r"^\| `profilestream_batch_size_events` \|.*Buckets: ((?:\d+, )*\d+)", docs, flags=re.MULTILINE)
    assert row is not None
    assert tuple(int(b) for b in row.group(1).split(", ")) == BATCH_SIZE_BUCKETS


def test_lag_is_never_negative(registry: CollectorRegistry, metrics: WorkerMetrics) -> None:
    metrics.set_lag("events.search", 2, -3)
    assert value(registry, "profilestream_consumer_lag_messages", topic="events.search", partition="2") == 0.0


def test_revoked_partitions_stop_being_exposed(registry: CollectorRegistry, metrics: WorkerMetrics) -> None:
    metrics.set_lag("events.browse", 0, 10)
    metrics.set_consumed_offset("events.browse", 0, 100)
    metrics.set_lag("events.browse", 1, 20)  # no offset yet for this one
    metrics.retain_partitions([("events.browse", 0)])
    lag = "profilestream_consumer_lag_messages"
    assert value(registry, lag, topic="events.browse", partition="0") == 10.0
    assert value(registry, lag, topic="events.browse", partition="1") is None
    metrics.retain_partitions([])
    assert value(registry, lag, topic="events.browse", partition="0") is None
    assert value(registry, "profilestream_consumed_offset", topic="events.browse", partition="0") is None


def test_broker_reachability(registry: CollectorRegistry, metrics: WorkerMetrics) -> None:
    # Before the lag monitor's first request the broker counts as up: a restoring worker is not cut off.
    assert value(registry, "profilestream_broker_up") == 1.0
    assert value(registry, "profilestream_broker_unreachable_total") == 0.0
    metrics.set_broker_up(False)
    metrics.count_broker_unreachable()
    metrics.count_broker_unreachable(2)
    assert value(registry, "profilestream_broker_up") == 0.0
    assert value(registry, "profilestream_broker_unreachable_total") == 3.0
    metrics.set_broker_up(True)
    assert value(registry, "profilestream_broker_up") == 1.0


def test_infra_retries_start_at_zero_per_stage_and_the_stage_is_checked(
    registry: CollectorRegistry, metrics: WorkerMetrics
) -> None:
    for stage in INFRA_STAGES:
        assert value(registry, "profilestream_infra_retries_total", stage=stage) == 0.0
    metrics.count_infra_retry("store")
    metrics.count_infra_retry("publish", 3)
    assert value(registry, "profilestream_infra_retries_total", stage="store") == 1.0
    assert value(registry, "profilestream_infra_retries_total", stage="publish") == 3.0
    with pytest.raises(ValueError, match="unknown infrastructure stage"):
        metrics.count_infra_retry("/var/lib/some-disk")  # type: ignore[arg-type]
    stages = {
        s.labels["stage"]
        for f in registry.collect()
        for s in f.samples
        if s.name == "profilestream_infra_retries_total"
    }
    assert stages == {"publish", "store"}


def test_the_infra_stages_are_the_ones_the_worker_retries_under() -> None:
    # Every Kafka write (changelog, dead letters, profiles, tombstones) is one BulkProducer.publish: stage
    # `publish`. A documented stage the worker never counts would send an operator after a fault that cannot be.
    source = (REPO_ROOT / "streams" / "worker" / "app.py").read_text(encoding="utf-8")
    assert set(re.findall(r'_retry\(\s*"(\w+)"', source)) == set(INFRA_STAGES)


def test_paused(registry: CollectorRegistry, metrics: WorkerMetrics) -> None:
    assert value(registry, "profilestream_paused") == 0.0
    metrics.set_paused(True)
    assert value(registry, "profilestream_paused") == 1.0
    metrics.set_paused(False)
    assert value(registry, "profilestream_paused") == 0.0


def test_model_info_holds_the_current_version_only(registry: CollectorRegistry, metrics: WorkerMetrics) -> None:
    metrics.set_model_version("gru-v1")
    metrics.set_model_version("gru-v2")
    infos = [s for f in registry.collect() for s in f.samples if s.name == "profilestream_model_info"]
    assert [(s.labels, s.value) for s in infos] == [({"model_version": "gru-v2"}, 1.0)]


def test_http_server_serves_this_registry_and_shuts_down(metrics: WorkerMetrics) -> None:
    metrics.count_consumed("purchase", 2)
    server = metrics.start_http_server("127.0.0.1", 0)
    try:
        url = f"http://127.0.0.1:{server.port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            body = response.read().decode()
    finally:
        server.shutdown()
    families = {f.name: f for f in text_string_to_metric_families(body)}
    consumed = families["profilestream_events_consumed"]
    assert consumed.type == "counter"
    assert any(s.labels == {"type": "purchase"} and s.value == 2.0 for s in consumed.samples)
    assert "process_cpu_seconds" in families
    with pytest.raises(OSError):
        urllib.request.urlopen(url, timeout=2)


def test_every_metric_is_documented_with_its_type() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "metrics.md").read_text(encoding="utf-8")
    registry = CollectorRegistry()
    WorkerMetrics(registry, process_metrics=False)
    exposed = {"counter": "{}_total", "histogram": "{}", "gauge": "{}", "info": "{}_info"}
    documented_type = {"counter": "counter", "histogram": "histogram", "gauge": "gauge", "info": "gauge (info)"}
    for family in registry.collect():
        name = exposed[family.type].format(family.name)
        row = re.search(rf"^\| `{name}` \| ([^|]+) \|", docs, flags=re.MULTILINE)
        assert row is not None, f"{name} is not in docs/metrics.md"
        assert row.group(1).strip() == documented_type[family.type], name
