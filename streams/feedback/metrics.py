"""Prometheus metrics of the feedback consumer, one object on an injected registry (nothing at import time).

Labels are bounded sets: the model version (at most ``MAX_VERSION_LABELS`` distinct, then ``other``), the source
(``profile``, ``popular``), the click kind, ``k`` of CTR@k and closed reason codes. No label carries a user id,
an item id or a request id. Names and meanings: docs/metrics.md ("Feedback"); the alert rules depend on them.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge

from streams.contract.decoder import Reason
from streams.feedback.join import (
    CTR_KS,
    UNATTRIBUTED_REASONS,
    Clicked,
    ClickedAt,
    Outcome,
    Shown,
    Unattributed,
)

NAMESPACE: Final = "profilestream_feedback"
MAX_VERSION_LABELS: Final = 16
"""Distinct model versions given their own series; a 17th and later are counted as ``other`` (a version label
comes from the impressions, so a misbehaving recommender must not be able to grow the series without bound)."""
OTHER_VERSION: Final = "other"


class FeedbackMetrics:
    """Every metric of one feedback consumer process."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.impressions = Counter(
            "impressions",
            "Impressions (recommendation responses shown) counted, by model version and source.",
            ["model_version", "source"],
            namespace=NAMESPACE,
            registry=registry,
        )
        self.clicks = Counter(
            "clicks",
            "Clicks (browse or purchase events with a request id) attributed to an impression.",
            ["model_version", "source", "kind"],
            namespace=NAMESPACE,
            registry=registry,
        )
        self.clicked_impressions = Counter(
            "clicked_impressions",
            "Impressions with at least one click on one of their top k items (CTR@k's numerator), by k.",
            ["model_version", "source", "k"],
            namespace=NAMESPACE,
            registry=registry,
        )
        self.unattributed_clicks = Counter(
            "unattributed_clicks",
            "Clicks whose impression was not held: no_impression (never seen within the window), other_user, "
            "too_late (after the attribution window), pending_full.",
            ["reason"],
            namespace=NAMESPACE,
            registry=registry,
        )
        self.rejected = Counter(
            "rejected_records",
            "Records skipped as invalid, by topic kind (impression, browse, purchase) and the contract's reason.",
            ["kind", "reason"],
            namespace=NAMESPACE,
            registry=registry,
        )
        self.held_impressions = Gauge(
            "held_impressions", "Impressions held for attribution.", namespace=NAMESPACE, registry=registry
        )
        self.pending_clicks = Gauge(
            "pending_clicks", "Clicks waiting for their impression.", namespace=NAMESPACE, registry=registry
        )
        self.assigned_partitions = Gauge(
            "assigned_partitions",
            "Partitions of the three topics this consumer owns.",
            namespace=NAMESPACE,
            registry=registry,
        )
        for reason in UNATTRIBUTED_REASONS:
            self.unattributed_clicks.labels(reason)
        for kind in ("impression", "browse", "purchase"):
            for code in (Reason.NOT_JSON, Reason.MISSING_FIELD, Reason.INVALID_VALUE):
                self.rejected.labels(kind, code.value)
        self._versions: set[str] = set()

    def _version(self, version: str) -> str:
        if version in self._versions:
            return version
        if len(self._versions) < MAX_VERSION_LABELS:
            self._versions.add(version)
            return version
        return OTHER_VERSION

    def count(self, outcomes: list[Outcome]) -> None:
        """Count the join's outcomes."""
        for outcome in outcomes:
            if isinstance(outcome, Shown):
                version = self._version(outcome.model_version)
                self.impressions.labels(version, outcome.source).inc()
                # The numerators exist (at 0) as soon as their denominator does, so ratios start at 0, not absent.
                for k in CTR_KS:
                    self.clicked_impressions.labels(version, outcome.source, str(k))
                for kind in ("browse", "purchase"):
                    self.clicks.labels(version, outcome.source, kind)
            elif isinstance(outcome, Clicked):
                self.clicks.labels(self._version(outcome.model_version), outcome.source, outcome.kind).inc()
            elif isinstance(outcome, ClickedAt):
                version = self._version(outcome.model_version)
                self.clicked_impressions.labels(version, outcome.source, str(outcome.k)).inc()
            elif isinstance(outcome, Unattributed):
                self.unattributed_clicks.labels(outcome.reason).inc()
