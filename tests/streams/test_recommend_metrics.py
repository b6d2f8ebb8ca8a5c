"""The recommender's metrics: each one documented with its type, bounded labels, versions shown exactly."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from streams.feedback.metrics import FeedbackMetrics
from streams.recommend.metrics import RecommendMetrics

DOCS = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"


@pytest.mark.parametrize("metrics", [RecommendMetrics, FeedbackMetrics])
def test_every_recommender_and_feedback_metric_is_documented_with_its_type(metrics: type) -> None:
    docs = DOCS.read_text(encoding="utf-8")
    registry = CollectorRegistry()
    metrics(registry)
    exposed = {"counter": "{}_total", "histogram": "{}", "gauge": "{}"}
    families = list(registry.collect())
    assert families
    for family in families:
        name = exposed[family.type].format(family.name)
        row = re.search(rf"^\| `{name}` \| ([^|]+) \|", docs, flags=re.MULTILINE)
        assert row is not None, f"{name} is not in docs/metrics.md"
        assert row.group(1).strip() == family.type, name


def test_labels_are_the_bounded_sets_only() -> None:
    registry = CollectorRegistry()
    RecommendMetrics(registry)
    labels = {key for family in registry.collect() for sample in family.samples for key in sample.labels}
    assert labels <= {"outcome", "reason", "kind", "le", "model_version"}


def test_index_sizes_show_exactly_the_loaded_versions() -> None:
    registry = CollectorRegistry()
    metrics = RecommendMetrics(registry)
    metrics.set_versions({"a": 3, "b": 5}, {"a": 0.5})
    assert registry.get_sample_value("profilestream_recommend_coverage_ratio", {"model_version": "a"}) == 0.5
    metrics.set_versions({"b": 5}, {"b": 0.2})
    assert registry.get_sample_value("profilestream_recommend_index_items", {"model_version": "a"}) is None
    assert registry.get_sample_value("profilestream_recommend_index_items", {"model_version": "b"}) == 5
    assert registry.get_sample_value("profilestream_recommend_coverage_ratio", {"model_version": "a"}) is None
    assert registry.get_sample_value("profilestream_recommend_coverage_ratio", {"model_version": "b"}) == 0.2
