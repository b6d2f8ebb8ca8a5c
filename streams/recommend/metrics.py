"""Prometheus metrics of the recommender, one object on an injected registry (nothing at import time).

Labels are bounded sets: the request outcome, the fallback reason, the model version. No label carries a user
id or an item id. The names and meanings are listed in docs/metrics.md ("Recommender"); the alert rules in
deploy/prometheus/rules/ depend on them.
"""

from __future__ import annotations

from typing import Final, Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from streams.recommend.service import Fallback

NAMESPACE: Final = "profilestream_recommend"

Outcome = Literal["ok", "bad_request", "error"]
OUTCOMES: Final[tuple[Outcome, ...]] = ("ok", "bad_request", "error")

REQUEST_LATENCY_BUCKETS_S: Final = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
)  # fmt: skip
"""Request handling time, 0.5 ms .. 1 s; 0.05 s (the alert's threshold) is a boundary."""


class RecommendMetrics:
    """Every metric of one recommender process."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "requests",
            "Recommendation requests answered, by outcome (ok, bad_request, error).",
            ["outcome"],
            namespace=NAMESPACE,
            registry=registry,
        )
        self.connections_refused = Counter(
            "connections_refused",
            "Connections answered 503 busy and closed because recommend_max_connections were being served.",
            namespace=NAMESPACE,
            registry=registry,
        )
        self.request_seconds = Histogram(
            "request_seconds",
            "Time to answer a recommendation request (lookup, search, exclusion), in seconds.",
            namespace=NAMESPACE,
            registry=registry,
            buckets=REQUEST_LATENCY_BUCKETS_S,
        )
        self.fallbacks = Counter(
            "fallbacks",
            "Requests answered by popularity, by reason: unknown_user, no_index (the profile's model version has "
            "no loaded item vectors), dimension_mismatch.",
            ["reason"],
            namespace=NAMESPACE,
            registry=registry,
        )
        self.index_items = Gauge(
            "index_items",
            "Items in the loaded index of each model version.",
            ["model_version"],
            namespace=NAMESPACE,
            registry=registry,
        )
        self.profiles = Gauge("profiles", "Users whose latest profile is held.", namespace=NAMESPACE, registry=registry)
        self.skipped_records = Counter(
            "skipped_records",
            "Records of the followed topics that were not valid and were skipped, by topic kind.",
            ["kind"],
            namespace=NAMESPACE,
            registry=registry,
        )
        self.purchases_expired = Counter(
            "purchases_expired",
            "Held purchases (a user and an item) forgotten because the input topics' retention "
            "(input_retention_ms) passed them.",
            namespace=NAMESPACE,
            registry=registry,
        )
        self.impressions = Counter(
            "impressions",
            "Impressions of answered requests, by outcome: sent (acknowledged by the broker) or failed.",
            ["outcome"],
            namespace=NAMESPACE,
            registry=registry,
        )
        self.coverage = Gauge(
            "coverage_ratio",
            "Share of each loaded model version's items this recommender showed in the last one to two coverage "
            "windows.",
            ["model_version"],
            namespace=NAMESPACE,
            registry=registry,
        )
        for outcome in ("sent", "failed"):
            self.impressions.labels(outcome)
        for outcome in OUTCOMES:
            self.requests.labels(outcome)
        for reason in Fallback:
            self.fallbacks.labels(reason.value)
        for kind in ("profiles", "purchases", "items"):
            self.skipped_records.labels(kind)

    def set_versions(self, sizes: dict[str, int], coverage: dict[str, float]) -> None:
        """Show exactly the loaded versions (an unloaded version's series disappear)."""
        self.index_items.clear()
        self.coverage.clear()
        for version, size in sizes.items():
            self.index_items.labels(version).set(size)
            self.coverage.labels(version).set(coverage.get(version, 0.0))
